"""Measuring trained attention: the attention locality score of every head (paper eq. 3) and the
cross-layer similarity of attention maps (paper appendix A.3, after DeepViT).

Both recompute attention probabilities in forward pre-hooks that exist only during the call,
so a model pays nothing for them outside it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from timm.models.cait import TalkingHeadAttn

from .locality import als_of_probs, window_matrix
from .mait import attention_prefix_tokens


def attention_probs(attn, x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, T) attention probabilities of an attention module, masked or not: timm's
    ``Attention``, CaiT's ``TalkingHeadAttn`` (its softmax, before the post-softmax head mix), or
    any module with an ``attention_probs`` method (the masked ones)."""
    if hasattr(attn, "attention_probs"):
        return attn.attention_probs(x)
    B, T, _ = x.shape
    q, k, _ = attn.qkv(x).reshape(B, T, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    if isinstance(attn, TalkingHeadAttn):
        logits = (q * attn.scale) @ k.transpose(-2, -1)
        return attn.proj_l(logits.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).softmax(dim=-1)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


@torch.no_grad()
def measure_als(model, images: torch.Tensor | Iterable, *, window: tuple[int, int] | None = None,
                batch_size: int = 256) -> np.ndarray:
    """(L, H) ALS of every head, averaged over ``images``, in eval mode.

    ``images`` is a (B, C, H, W) tensor or an iterable of such tensors or of (images, labels)
    batches. The window defaults to the model's mask spec window, else 3x3. Masked and unmasked
    heads are measured alike. Forward hooks recompute each layer's attention probabilities, so
    models pay nothing for ALS outside this call.
    """
    spec = getattr(model, "mask_spec", None)
    window = tuple(window or (spec.window if spec is not None else (3, 3)))
    device = next(model.parameters()).device
    grid, prefix = tuple(model.patch_embed.grid_size), attention_prefix_tokens(model)
    local = window_matrix(grid, window, device)
    sums = torch.zeros(len(model.blocks), model.blocks[0].attn.num_heads, dtype=torch.float64, device=device)

    def accumulate(layer: int):
        def hook(attn, args):
            probs = attention_probs(attn, args[0])  # (B, H, T, T)
            sums[layer] += als_of_probs(probs.double(), local, prefix).sum(0)
        return hook

    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    was_training = model.training
    model.eval()
    handles = [block.attn.register_forward_pre_hook(accumulate(l)) for l, block in enumerate(model.blocks)]
    count = 0
    try:
        for batch in batches:
            batch = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(batch.to(device))
            count += batch.shape[0]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if count == 0:
        raise ValueError("measure_als: no images given")
    return (sums / count).cpu().numpy()


@torch.no_grad()
def cross_layer_similarity(model, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """(H, L, L) mean cosine similarity of attention rows between layers, per head.

    For head h and token t, entry (i, j) is the cosine similarity between layer i's and layer j's
    attention rows A[i][h, t, :] and A[j][h, t, :], averaged over tokens and images. High values
    between late layers are the "attention collapse" that the paper finds masks reduce."""
    was_training = model.training
    model.eval()
    layers, heads = len(model.blocks), model.blocks[0].attn.num_heads
    total = torch.zeros(heads, layers, layers, dtype=torch.float64)
    rows = 0
    maps: dict[int, torch.Tensor] = {}

    def capture(layer):
        def hook(attn, args):
            probs = attention_probs(attn, args[0])  # (B, H, T, T)
            maps[layer] = torch.nn.functional.normalize(probs.double(), dim=-1)
        return hook

    handles = [block.attn.register_forward_pre_hook(capture(l)) for l, block in enumerate(model.blocks)]
    try:
        for batch in images.split(batch_size):
            maps.clear()
            model(batch)
            stacked = torch.stack([maps[l] for l in range(layers)])  # (L, B, H, T, T)
            # dot products of the same (image, head, token) row between every pair of layers
            total += torch.einsum("ibhtk,jbhtk->hij", stacked, stacked).cpu()
            rows += stacked.shape[1] * stacked.shape[3]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return (total / rows).numpy()
