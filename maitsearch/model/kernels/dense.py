"""Dense masked attention: the whole (T, T) logit matrix, then the mask. Fastest at small T.

``factor`` multiplies the logits before softmax (docs/DESIGN.md, section 3): 1 on allowed keys, 0 for a
``paper`` hard mask, alpha for a soft mask. ``strict`` heads (``local`` semantics) get -inf instead
and run through SDPA with a boolean mask, which keeps them on PyTorch's fused kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _MultiplicativeAttention(torch.autograd.Function):
    """softmax((Q K^T) * factor) V as one autograd node that keeps only the probabilities for
    backward (and, when the factor is learned, the raw logits its gradient needs): fewer kernels
    and less saved memory than the op-by-op graph. ``factor`` already holds the 1/sqrt(d) scale."""

    @staticmethod
    def forward(ctx, q, k, v, factor):
        raw = torch.matmul(q, k.transpose(-2, -1))  # (B, h, T, T)
        if ctx.needs_input_grad[3]:  # soft masks: d factor needs the raw logits; keep them
            probs = (raw * factor).softmax(dim=-1)
            ctx.save_for_backward(q, k, v, probs, factor, raw)
        else:
            probs = raw.mul_(factor).softmax(dim=-1)
            ctx.save_for_backward(q, k, v, probs, factor)
        return probs @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, probs, factor, *raw = ctx.saved_tensors
        grad_v = probs.transpose(-2, -1) @ grad_out
        grad_logits = torch._softmax_backward_data(grad_out @ v.transpose(-2, -1), probs, -1, probs.dtype)
        grad_factor = None
        if raw:  # d factor = d logits * raw logits, summed over the batch
            grad_factor = (grad_logits * raw[0]).sum(0).sum_to_size(factor.shape)
        grad_scores = grad_logits.mul_(factor)
        return grad_scores @ k, grad_scores.transpose(-2, -1) @ q, grad_v, grad_factor


def multiplicative_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        factor: torch.Tensor, scale: float, dropout: nn.Module | None = None,
) -> torch.Tensor:
    """softmax(factor * (Q K^T * scale)) V for q, k, v (B, h, T, d) and factor (h, T, T) or (T, T)."""
    factor = factor.to(q.dtype) * scale
    if dropout is None or dropout.p == 0:
        return _MultiplicativeAttention.apply(q, k, v, factor)
    attn = (torch.matmul(q, k.transpose(-2, -1)) * factor).softmax(dim=-1)
    return dropout(attn) @ v


def strict_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        allowed: torch.Tensor, dropout_p: float = 0.0,
) -> torch.Tensor:
    """Softmax over the allowed keys only (-inf elsewhere), on SDPA's fused kernels."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
