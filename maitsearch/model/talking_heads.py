"""Masked talking-heads attention: CaiT's patch self-attention with locality masks (the paper's
Table 4, "simply adding the attention mask to CaiT"; docs/DESIGN.md, section 5).

Talking heads mix the heads' logits before the softmax (``proj_l``) and their probabilities
after it (``proj_w``). The mask sits between the first mix and the softmax, on the logits the
softmax sees: a masked head is local in exactly the sense a DeiT head is, whatever ``proj_l``
mixed into it. Masked before the mix, ``proj_l`` would carry the other heads' global logits
straight back into the masked one. ``proj_w`` then blends the probability maps, as CaiT always
does. CaiT's patch layers hold no class token (it joins in the class-attention layers, which
stay untouched), so every token here is a patch.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from timm.layers import register_notrace_module
from timm.models.cait import TalkingHeadAttn

from .locality import head_pattern_seed, random_matrix, window_matrix
from .masked_heads import MaskedHeads


@register_notrace_module
class MaskedTalkingHeadAttn(MaskedHeads, TalkingHeadAttn):
    """CaiT's ``TalkingHeadAttn`` sharing the original's submodules, with per-head masks: alpha 0
    hard, 1 plain, in between soft (sigmoid(theta), learned). Dense, as CaiT's own attention is."""

    def configure(self, alphas: Sequence[float], *, grid_size: tuple[int, int], window: tuple[int, int] = (3, 3),
                  semantics: str = "paper", pattern: str = "window", pattern_seed: int = 0,
                  layer_index: int = 0) -> None:
        alphas = [float(a) for a in alphas]
        if len(alphas) != self.num_heads:
            raise ValueError(f"alphas: expected {self.num_heads} (one per head), got {len(alphas)}")
        self.grid_size, self.window, self.semantics = tuple(grid_size), tuple(window), semantics
        self.hard_heads = tuple(h for h, a in enumerate(alphas) if a == 0.0)
        self.soft_heads = tuple(h for h, a in enumerate(alphas) if 0.0 < a < 1.0)
        device = self.qkv.weight.device
        if pattern == "window":
            allowed = window_matrix(self.grid_size, self.window, device).expand(self.num_heads, -1, -1)
        else:
            allowed = torch.stack([random_matrix(self.grid_size, self.window,
                                                 head_pattern_seed(pattern_seed, layer_index, h))
                                   for h in range(self.num_heads)]).to(device)
        masked = torch.tensor([a < 1.0 for a in alphas], device=device)
        self.register_buffer("outside", ~allowed & masked[:, None, None], persistent=False)  # (H, N, N)
        self.register_buffer("hard_alpha", torch.tensor([0.0 if a == 0.0 else 1.0 for a in alphas], device=device),
                             persistent=False)
        self._reset_soft_logit([alphas[h] for h in self.soft_heads], device)

    def alphas(self) -> torch.Tensor:
        """(H,) current alpha of every head: 0 hard, 1 plain, sigmoid(theta) soft."""
        alpha = self.hard_alpha.clone()
        if self.soft_heads:
            alpha[list(self.soft_heads)] = torch.sigmoid(self.soft_logit.detach())
        return alpha

    def _alpha(self, dtype: torch.dtype) -> torch.Tensor:
        alpha = self.hard_alpha.to(dtype)
        if self.soft_heads:
            alpha = alpha.index_put((torch.tensor(self.soft_heads, device=alpha.device),),
                                    torch.sigmoid(self.soft_logit).to(dtype))
        return alpha

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, N, N) the masked heads' softmax, before ``proj_w`` mixes them: the maps whose
        locality the mask sets, and the ones ALS reads (the mixed maps are not distributions)."""
        q, k, _ = self._project(x)
        return self._probs(q, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self._project(x)
        attn = self.proj_w(self._probs(q, k).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))

    def _project(self, x: torch.Tensor):
        B, N, C = x.shape
        if N != self.outside.shape[-1]:
            raise ValueError(f"MaskedTalkingHeadAttn was built for {self.outside.shape[-1]} patches "
                             f"({self.grid_size[0]}x{self.grid_size[1]}), got {N}: apply the mask spec again")
        return self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)

    def _probs(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        logits = self.proj_l(((q * self.scale) @ k.transpose(-2, -1)).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        factor = torch.where(self.outside, self._alpha(logits.dtype)[:, None, None],
                             torch.ones((), dtype=logits.dtype, device=logits.device))
        logits = logits * factor  # (B, H, N, N): mixed logits, masked
        if self.semantics == "local" and self.hard_heads:
            logits = logits.masked_fill(self.outside & (self.hard_alpha == 0.0)[:, None, None], -math.inf)
        return logits.softmax(dim=-1)

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, hard={list(self.hard_heads)}, soft={list(self.soft_heads)}, "
                f"window={self.window}, semantics={self.semantics}, grid={self.grid_size}, mask after proj_l")
