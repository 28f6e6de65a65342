"""Window attention for inference and export: row bands, one gather and two small matmuls.

The training kernel (``local.py``) slides k shifted views of the key grid, which keeps the
memory saved for backward at one padded grid; exported, each shift is a chain of Slice nodes
(375 nodes for one layer), and elementwise work on k copies of the keys is memory-bound in
onnxruntime. Here the queries of one grid row score, in one matmul, the keys of the ``rows``
grid rows their windows reach: a band of rows x gw keys, fetched with one Gather. Per query
that is rows * gw logits instead of T (42 instead of 197 at 224 px, 168 instead of 3137 at
896 px), as matrix products, in a graph of about 30 nodes whatever the window.

``paper`` semantics, exactly: every key outside the window has logit 0, so band keys outside
the window are multiplied by 0 (as in the dense kernel), and the c = N - rows * gw patches the
band leaves out are one pseudo-key with logit log(c). Every logit-0 entry then has the same
weight w0 = w_pseudo / c, and out = sum_band (w_j - w0) v_j + w0 * sum(all patch values), which
is the window's weighted values plus w0 times the values outside it. A border row's band
repeats a grid row instead of padding; a repeated entry has logit 0, so its weight w_j - w0 is 0.
No logit is -inf: onnxruntime's softmax is about 9x slower on rows holding -inf.

``local`` semantics: keys outside the window get -inf (a bias), and the softmax covers the band.
Prefix keys are never masked; prefix queries attend to all T keys. Grids no taller than the
window (c <= 0) are not for this kernel (``BandTable.fits``): they are small enough for dense.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BandTable(nn.Module):
    """A layer's window geometry as buffers (not persistent: derived from the grid and window,
    never saved), so export sees small constants and ``.to(device)`` moves them with the layer.

    Each query row's keys are E = P + rows * gw tokens: the P prefix tokens, then its band.

    - ``index`` (gh * E,): those tokens' indices, band rows clamped at the border;
    - ``row_inside`` (gh, 1, rows, 1) and ``col_inside`` (1, gw, 1, gw): 1.0 where a band row
      lies on the grid and a key column within the window of the query's; their product is the
      (gh, gw, rows, gw) window;
    - ``row_bias``, ``col_bias``: the same as 0 / -inf (``local`` semantics);
    - ``outside``: the patches no band entry stands for, N - rows * gw.
    """

    def __init__(self, grid: tuple[int, int], window: tuple[int, int], num_prefix: int, device=None):
        super().__init__()
        if not self.fits(grid, window):
            raise ValueError(f"band kernel: a {grid[0]}x{grid[1]} grid needs more rows than the window's {window[0]}")
        gh, gw = grid
        rows, cols = window
        self.grid, self.rows, self.num_prefix = (gh, gw), rows, num_prefix
        self.outside = gh * gw - rows * gw
        band_rows = torch.arange(gh, device=device)[:, None] + torch.arange(rows, device=device) - rows // 2
        row_inside = (band_rows >= 0) & (band_rows < gh)  # (gh, rows)
        col = torch.arange(gw, device=device)
        col_inside = (col[:, None] - col[None, :]).abs() <= cols // 2  # (query col, key col)
        patches = num_prefix + band_rows.clamp(0, gh - 1)[:, :, None] * gw + col  # (gh, rows, gw)
        prefix = torch.arange(num_prefix, device=device).expand(gh, num_prefix)
        index = torch.cat([prefix, patches.reshape(gh, rows * gw)], dim=1)  # (gh, E)
        self.register_buffer("index", index.reshape(-1), persistent=False)
        self.register_buffer("row_inside", row_inside.float()[:, None, :, None], persistent=False)
        self.register_buffer("col_inside", col_inside.float()[None, :, None, :], persistent=False)
        self.register_buffer("row_bias", _bias(row_inside)[:, None, :, None], persistent=False)
        self.register_buffer("col_bias", _bias(col_inside)[None, :, None, :], persistent=False)

    @staticmethod
    def fits(grid: tuple[int, int], window: tuple[int, int]) -> bool:
        return grid[0] > window[0]


def _bias(inside: torch.Tensor) -> torch.Tensor:
    return torch.zeros(inside.shape, device=inside.device).masked_fill(~inside, -math.inf)


def band_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: BandTable, *,
                          scale: float, semantics: str) -> torch.Tensor:
    """Hard-masked attention for q, k, v (B, h, T, d), T = P + gh * gw, with ``table`` built for
    the layer's grid, window and P. Differentiable, but meant for eval and export: backward
    keeps the (B, h, gh, E, d) gathered keys and values (``local.window_attention`` keeps less)."""
    B, h, T, d = q.shape
    p, (gh, gw), rows = table.num_prefix, table.grid, table.rows
    n, band = gh * gw, rows * gw
    keys = p + band
    dtype = q.dtype
    paper = semantics == "paper"
    q_rows = q[:, :, p:].reshape(B, h, gh, gw, d)
    k_band = k.index_select(2, table.index).reshape(B, h, gh, keys, d)
    scores = q_rows @ k_band.transpose(-2, -1)  # (B, h, gh, gw, E): prefix keys, then the band
    if paper:  # 0 outside the window; the scale rides along
        window = (table.row_inside * table.col_inside).reshape(gh, gw, band)
        factor = torch.cat([torch.ones(gh, gw, p, device=q.device), window], dim=-1).to(dtype) * scale
        pseudo = torch.full((1, 1, 1, 1, 1), math.log(table.outside), dtype=dtype, device=q.device)
        logits = torch.cat([scores * factor, pseudo.expand(B, h, gh, gw, 1)], dim=-1)
    else:  # -inf outside the window
        bias = (table.row_bias + table.col_bias).reshape(gh, gw, band)
        logits = scores * scale + torch.cat([torch.zeros(gh, gw, p, device=q.device), bias], dim=-1).to(dtype)
    weights = logits.softmax(dim=-1)
    if paper:
        per_zero = weights[..., keys:] / table.outside  # w0, the weight of each logit-0 key
        is_band = torch.cat([torch.zeros(p, device=q.device), torch.ones(band, device=q.device)]).to(dtype)
        weights = weights[..., :keys] - per_zero * is_band
    v_band = v.index_select(2, table.index).reshape(B, h, gh, keys, d)
    out = weights @ v_band  # (B, h, gh, gw, d)
    if paper:
        out = out + per_zero * v[:, :, p:].sum(2, keepdim=True).unsqueeze(2)
    out = out.reshape(B, h, n, d)
    if not p:
        return out
    # prefix rows stay global; written out, as SDPA of a few rows exports to a slower graph
    prefix_out = ((q[:, :, :p] * scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
    return torch.cat([prefix_out, out], dim=2)
