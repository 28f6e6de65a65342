"""Windows on the patch grid, and the attention locality score (docs/DESIGN.md, section 3).

Tokens are ``P`` prefix tokens (class, distillation, registers) followed by the ``gh x gw``
patch grid in row-major order. The window of patch n is every patch within ``window`` rows x
cols centred on n, truncated at the border, n itself included. Prefix tokens are never masked.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..spec import MaskSpec

Grid = tuple[int, int]


def window_offsets(window: Sequence[int]) -> list[tuple[int, int]]:
    """(row, col) offsets of a window around its centre, row-major: 3x3 gives 9 offsets."""
    rows, cols = window
    return [(dy, dx) for dy in range(-(rows // 2), rows // 2 + 1) for dx in range(-(cols // 2), cols // 2 + 1)]


def window_matrix(grid: Grid, window: Sequence[int], device=None) -> torch.Tensor:
    """(N, N) bool: entry [n, j] is True when patch j lies in the window of patch n."""
    gh, gw = grid
    rows = torch.arange(gh, device=device).repeat_interleave(gw)
    cols = torch.arange(gw, device=device).repeat(gh)
    near_rows = (rows[:, None] - rows[None, :]).abs() <= window[0] // 2
    near_cols = (cols[:, None] - cols[None, :]).abs() <= window[1] // 2
    return near_rows & near_cols


def window_sizes(grid: Grid, window: Sequence[int], device=None) -> torch.Tensor:
    """(N,) number of patches in each patch's (border-truncated) window."""
    return window_matrix(grid, window, device).sum(-1)


def random_matrix(grid: Grid, window: Sequence[int], seed: int, device=None) -> torch.Tensor:
    """(N, N) bool: each row keeps as many random patches as that patch's window holds.

    The same per-query sparsity as the window with no locality in it: the control that
    separates "locality helps" from "pruning attention helps" (paper, section 5.5)."""
    n = grid[0] * grid[1]
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.rand(n, n, generator=generator).argsort(dim=1)
    keep = torch.arange(n)[None, :] < window_sizes(grid, window)[:, None]
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed.scatter_(1, order, keep)
    return allowed.to(device)


def token_matrix(patch_allowed: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """(T, T) bool from an (N, N) patch matrix: prefix rows and columns are always allowed."""
    n = patch_allowed.shape[0]
    allowed = torch.ones(num_prefix + n, num_prefix + n, dtype=torch.bool, device=patch_allowed.device)
    allowed[num_prefix:, num_prefix:] = patch_allowed
    return allowed


def head_pattern_seed(pattern_seed: int, layer: int, head: int) -> int:
    """A distinct, reproducible random pattern per (layer, head)."""
    return (int(pattern_seed) * 1_000_003 + layer * 1_009 + head) % (2**63)


def als_of_probs(probs: torch.Tensor, window: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """ALS of each head in each image, from attention probabilities.

    probs: (B, H, T, T) rows summing to 1. window: (N, N) bool window matrix.
    Returns (B, H): the mean over patch queries of the window's share of the attention the query
    pays to patches. Prefix tokens are not locality, so their mass is left out of both sides:
    a head that attends to the class token and to its window only scores 1, as a ``local``
    head must, and a head spreading its patch attention uniformly scores |window| / N."""
    patch_rows = probs[:, :, num_prefix:, num_prefix:]  # (B, H, N, N)
    local_mass = (patch_rows * window.to(probs.dtype)).sum(-1)  # (B, H, N)
    return (local_mass / patch_rows.sum(-1)).mean(-1)


def attention_cost(spec: MaskSpec, grid: Grid, num_prefix: int) -> float:
    """Fraction of the model's attention-logit work left if every hard-masked head computed only
    its window (``local`` semantics): 1.0 for DeiT, about 9/T per masked head for 3x3 windows."""
    n = grid[0] * grid[1]
    tokens = num_prefix + n
    window_logits = int(window_sizes(grid, spec.window).sum())
    masked_head = num_prefix * tokens + n * num_prefix + window_logits  # prefix rows + prefix cols + windows
    full_head = tokens * tokens
    masked = spec.num_masked
    total = spec.layers * spec.heads
    return (masked * masked_head + (total - masked) * full_head) / (total * full_head)
