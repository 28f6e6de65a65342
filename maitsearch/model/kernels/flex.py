"""FlexAttention path (CUDA): the masks as ``score_mod`` / ``mask_mod`` functions, no (T, T) tensor.

``score_mod`` keeps allowed logits and multiplies the others by the head's alpha (0 for a
``paper`` hard mask, sigmoid(theta) for a soft one). ``strict`` heads (``local`` semantics) are cut
by a block mask instead, so whole blocks outside the window are skipped: that is the O(N*k) path
on GPU. The mod functions are plain tensor code, so tests check them on CPU against the dense
reference even where no GPU is available.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # very old torch: the auto kernel choice never picks "flex" then
    flex_attention = create_block_mask = None

AVAILABLE = flex_attention is not None


def allowed_fn(grid: tuple[int, int], window: tuple[int, int], num_prefix: int,
               allowed_table: torch.Tensor | None = None) -> Callable:
    """``allowed(h, q_idx, kv_idx)``: prefix rows/cols always, else the window (or a table of
    random patterns, one (T, T) slice per head)."""
    if allowed_table is not None:
        return lambda h, q_idx, kv_idx: allowed_table[h, q_idx, kv_idx]
    gw = grid[1]
    half_rows, half_cols = window[0] // 2, window[1] // 2

    def allowed(h, q_idx, kv_idx):
        q_patch, kv_patch = q_idx - num_prefix, kv_idx - num_prefix
        near = (((q_patch // gw) - (kv_patch // gw)).abs() <= half_rows) & \
               (((q_patch % gw) - (kv_patch % gw)).abs() <= half_cols)
        return (q_patch < 0) | (kv_patch < 0) | near

    return allowed


def make_score_mod(allowed: Callable, alpha: torch.Tensor) -> Callable:
    def score_mod(score, b, h, q_idx, kv_idx):
        return torch.where(allowed(h, q_idx, kv_idx), score, score * alpha[h])

    return score_mod


def make_mask_mod(allowed: Callable, strict: torch.Tensor) -> Callable:
    def mask_mod(b, h, q_idx, kv_idx):
        return allowed(h, q_idx, kv_idx) | ~strict[h]

    return mask_mod


# flex_attention compiles one kernel per shape and grad mode (dynamic=False: the fastest, and
# automatic dynamic shapes do not take hold inside it). A search meets a dozen or more: 1-3 masked
# heads per layer, a last partial batch, training and evaluation, fp32 and bf16. Dynamo's default
# of 8 recompiles per function would be spent within the first epoch, and flex_attention then
# falls back to its unfused O(T^2) path for every later shape, with one warning and no error.
RECOMPILE_LIMIT = 64


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    return torch.compile(flex_attention, dynamic=False)


def compiled_flex_attention(q, k, v, **kwargs):
    """``flex_attention`` compiled, with room for every shape a search or a training meets."""
    if torch.compiler.is_compiling():  # inside a compiled model, whose own compile fuses this call
        return flex_attention(q, k, v, **kwargs)
    import torch._dynamo as dynamo

    with dynamo.config.patch(recompile_limit=max(RECOMPILE_LIMIT, dynamo.config.recompile_limit)):
        return _compiled_flex()(q, k, v, **kwargs)


class FlexMasks:
    """Per-layer state for the flex path: the block mask is built once per (tokens, device)."""

    def __init__(self, grid, window, num_prefix: int, strict: tuple[bool, ...]):
        self.grid, self.window, self.num_prefix = tuple(grid), tuple(window), num_prefix
        self.strict = strict
        self._block_masks: dict = {}

    def block_mask(self, num_tokens: int, device: torch.device, table: torch.Tensor | None = None):
        if not any(self.strict):
            return None
        key = (num_tokens, str(device))
        if key not in self._block_masks:
            allowed = allowed_fn(self.grid, self.window, self.num_prefix, table)
            strict = torch.tensor(self.strict, device=device)
            self._block_masks[key] = create_block_mask(
                make_mask_mod(allowed, strict), None, len(self.strict), num_tokens, num_tokens, device=device)
        return self._block_masks[key]

    def attention(self, q, k, v, alpha: torch.Tensor, scale: float, table: torch.Tensor | None = None):
        """q, k, v: (B, h, T, d) for the masked heads; alpha: (h,) with 0 for hard heads;
        table: (h, T, T) bool for random patterns, None for windows."""
        allowed = allowed_fn(self.grid, self.window, self.num_prefix, table)
        run = compiled_flex_attention if q.is_cuda else flex_attention
        return run(q, k, v, score_mod=make_score_mod(allowed, alpha.to(q.dtype)),
                   block_mask=self.block_mask(q.shape[2], q.device, table), scale=scale)
