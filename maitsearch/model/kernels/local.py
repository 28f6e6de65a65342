"""O(N*k) window attention for hard masks, without an N x N matrix (docs/DESIGN.md, section 3).

Each patch query scores its k window keys (one shifted copy of the key grid per window offset),
the P prefix keys, and, for ``paper`` semantics, one pseudo-key standing for all the other
patches: their logits are exactly 0, so together they weigh ``e^0 * count`` and contribute the mean
of their values. That mean comes from the sum of all patch values minus the window's box sum.
One softmax over k + P (+ 1) entries then gives the exact paper-semantics output. Prefix queries
are never masked and use plain SDPA over all T keys.

Memory is O(B*h*N*(k + d)); time is O(B*h*N*k*d).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..locality import window_offsets


@functools.lru_cache(maxsize=64)
def _geometry(grid: tuple[int, int], window: tuple[int, int], device: torch.device):
    """Which window offsets fall inside the grid, and log(#patches outside each window)."""
    gh, gw = grid
    rows = torch.arange(gh, device=device)[:, None, None]
    cols = torch.arange(gw, device=device)[None, :, None]
    offsets = torch.tensor(window_offsets(window), device=device)  # (k, 2)
    inside = ((rows + offsets[:, 0] >= 0) & (rows + offsets[:, 0] < gh)
              & (cols + offsets[:, 1] >= 0) & (cols + offsets[:, 1] < gw))  # (gh, gw, k)
    outside_count = gh * gw - inside.sum(-1).reshape(gh * gw, 1)  # (N, 1)
    log_outside = torch.where(outside_count > 0, outside_count.float().log(), -math.inf)
    return inside, outside_count, log_outside


def window_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
        grid: tuple[int, int], window: tuple[int, int], num_prefix: int, scale: float, semantics: str,
) -> torch.Tensor:
    """Hard-masked attention for q, k, v (B, h, T, d) with T = num_prefix + gh * gw."""
    B, h, T, d = q.shape
    gh, gw = grid
    n, p = gh * gw, num_prefix
    rows, cols = window
    inside, outside_count, log_outside = _geometry(grid, tuple(window), q.device)

    q_patch = (q[:, :, p:] * scale).reshape(B, h, gh, gw, d)
    pad = (0, 0, cols // 2, cols // 2, rows // 2, rows // 2)
    k_grid = F.pad(k[:, :, p:].reshape(B, h, gh, gw, d), pad)  # zero border; masked out below
    v_grid = F.pad(v[:, :, p:].reshape(B, h, gh, gw, d), pad)
    shifts = [(dy, dx) for dy in range(rows) for dx in range(cols)]

    window_logits = torch.stack(
        [(q_patch * k_grid[:, :, dy:dy + gh, dx:dx + gw]).sum(-1) for dy, dx in shifts], dim=-1)  # (B, h, gh, gw, k)
    window_logits = window_logits.masked_fill(~inside, -math.inf).reshape(B, h, n, len(shifts))
    logits = [window_logits]
    if p:
        logits.append(q_patch.reshape(B, h, n, d) @ k[:, :, :p].transpose(-2, -1))  # (B, h, N, P)
    if semantics == "paper":
        logits.append(log_outside.to(q.dtype).expand(B, h, n, 1))
    weights = torch.cat(logits, dim=-1).softmax(dim=-1)  # (B, h, N, k + P [+ 1])

    window_weights = weights[..., :len(shifts)].reshape(B, h, gh, gw, len(shifts))
    out = sum(window_weights[..., i:i + 1] * v_grid[:, :, dy:dy + gh, dx:dx + gw] for i, (dy, dx) in enumerate(shifts))
    out = out.reshape(B, h, n, d)
    if p:
        out = out + weights[..., len(shifts):len(shifts) + p] @ v[:, :, :p]
    if semantics == "paper":
        box = sum(v_grid[:, :, dy:dy + gh, dx:dx + gw] for dy, dx in shifts).reshape(B, h, n, d)
        outside_mean = (v[:, :, p:].sum(2, keepdim=True) - box) / outside_count.clamp(min=1).to(q.dtype)
        out = out + weights[..., -1:] * outside_mean

    if not p:
        return out
    prefix_out = F.scaled_dot_product_attention(q[:, :, :p], k, v, scale=scale)  # prefix rows stay global
    return torch.cat([prefix_out, out], dim=2)
