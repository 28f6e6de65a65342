"""Independent references for the tests: hand-built masks and plain dense attention, written
from docs/DESIGN.md, section 3, without any maitsearch code."""

import math

import torch


def neighbours_by_hand(grid, window, prefix):
    """(T, T) bool: prefix rows/cols always allowed, patches within the window of each other."""
    gh, gw = grid
    n = gh * gw
    allowed = torch.ones(prefix + n, prefix + n, dtype=torch.bool)
    for a in range(n):
        for b in range(n):
            ra, ca = divmod(a, gw)
            rb, cb = divmod(b, gw)
            allowed[prefix + a, prefix + b] = abs(ra - rb) <= window[0] // 2 and abs(ca - cb) <= window[1] // 2
    return allowed


def dense_attention(q, k, v, mode, allowed, alpha=None):
    """One head, q/k/v (B, T, d). mode: plain | paper (logits x M) | local (-inf) | soft (x alpha)."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mode == "paper":
        logits = logits * allowed.to(logits.dtype)
    elif mode == "local":
        logits = logits.masked_fill(~allowed, float("-inf"))
    elif mode == "soft":
        logits = torch.where(allowed, logits, alpha * logits)
    return logits.softmax(-1) @ v


def reference_block_attention(attn, x, modes, allowed_per_head, alphas):
    """timm Attention's projections around per-head dense reference attention."""
    B, T, C = x.shape
    H = attn.num_heads
    d = attn.head_dim
    q, k, v = attn.qkv(x).reshape(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
    heads = [dense_attention(q[:, h], k[:, h], v[:, h], modes[h], allowed_per_head[h], alphas.get(h))
             for h in range(H)]
    out = torch.stack(heads, 1).transpose(1, 2).reshape(B, T, H * d)
    return attn.proj(out)


def reference_talking_heads(attn, x, modes, allowed, alphas):
    """CaiT's talking-heads attention written out by hand, with the mask where docs/DESIGN.md
    (section 5) puts it: on the logits after the pre-softmax head mix (proj_l), before softmax.
    x (B, N, C) holds patches only; allowed (N, N); modes[h] as in ``dense_attention``."""
    B, N, C = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) / math.sqrt(C // H)  # (B, H, N, N)
    w_l, b_l = attn.proj_l.weight, attn.proj_l.bias  # mix heads: out_h = sum_g w[h, g] in_g + b[h]
    mixed = [sum(w_l[h, g] * logits[:, g] for g in range(H)) + b_l[h] for h in range(H)]
    probs = []
    for h in range(H):
        if modes[h] == "paper":
            mixed[h] = mixed[h] * allowed.to(x.dtype)
        elif modes[h] == "local":
            mixed[h] = mixed[h].masked_fill(~allowed, float("-inf"))
        elif modes[h] == "soft":
            mixed[h] = torch.where(allowed, mixed[h], alphas[h] * mixed[h])
        probs.append(mixed[h].softmax(-1))
    w_w, b_w = attn.proj_w.weight, attn.proj_w.bias
    blended = torch.stack([sum(w_w[h, g] * probs[g] for g in range(H)) + b_w[h] for h in range(H)], 1)
    out = (blended @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)
