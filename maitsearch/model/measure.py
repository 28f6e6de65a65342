"""Measuring the attention locality score of every head of a model (paper eq. 3)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .attention import attention_probs
from .locality import als_of_probs, window_matrix


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
    grid, prefix = tuple(model.patch_embed.grid_size), model.num_prefix_tokens
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
