"""One masked head, forward + backward, against dense SDPA, from 64 to 4096 tokens.

    python benchmarks/scaling.py [--grids 8,16,32,48,64] [--repeats 7] [--device cpu|cuda]

Paths: ``sdpa`` (an unmasked head: the baseline), ``dense-paper`` (the (T, T) multiplicative
kernel), ``window-local`` and ``window-paper`` (the O(N*k) kernels), and on CUDA ``flex-paper``.
Memory: on CUDA the allocator's peak; on CPU, where PyTorch keeps no peak, the bytes autograd
saves for backward (activation memory) and the largest single tensor, from a shape probe.
Targets at 4096 tokens: window-local >= 10x faster than dense SDPA, window-paper >= 5x.
Writes benchmarks/out/scaling-<device>.json.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from maitsearch.model.kernels import window_attention
from maitsearch.model.kernels.dense import multiplicative_attention
from maitsearch.model.kernels.probe import TensorProbe
from maitsearch.model.locality import token_matrix, window_matrix

try:
    from .common import interleaved_medians, write_json
except ImportError:
    from common import interleaved_medians, write_json

TARGETS = {"window-local": 10.0, "window-paper": 5.0}


def paths(grid: int, device: str):
    tokens = 1 + grid * grid
    q, k, v = (torch.randn(1, 1, tokens, 64, device=device, requires_grad=True) for _ in range(3))
    scale = 64 ** -0.5
    allowed = token_matrix(window_matrix((grid, grid), (3, 3), device), 1)
    fns = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
        "dense-paper": lambda: multiplicative_attention(q, k, v, allowed, scale),
        "window-local": lambda: window_attention(q, k, v, grid=(grid, grid), window=(3, 3), num_prefix=1,
                                                scale=scale, semantics="local"),
        "window-paper": lambda: window_attention(q, k, v, grid=(grid, grid), window=(3, 3), num_prefix=1,
                                                scale=scale, semantics="paper"),
    }
    if device == "cuda":
        from maitsearch.model.kernels.flex import FlexMasks

        masks = FlexMasks((grid, grid), (3, 3), 1, (False,))
        fns["flex-paper"] = lambda: masks.attention(q, k, v, torch.zeros(1, device=device), scale)
    return fns, (q, k, v)


def step(fn, inputs):
    def run():
        out = fn()
        out.backward(torch.ones_like(out))
        for tensor in inputs:
            tensor.grad = None
    return run


def memory(fn, inputs, device: str) -> dict:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step(fn, inputs)()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated()}
    with TensorProbe() as probe:
        step(fn, inputs)()
    return {"saved_bytes": probe.saved_bytes, "largest_tensor_bytes": probe.largest() * 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", default="8,16,32,48,64")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rows = []
    for grid in map(int, args.grids.split(",")):
        fns, inputs = paths(grid, args.device)
        medians = interleaved_medians({n: step(f, inputs) for n, f in fns.items()}, warmup=2,
                                      repeats=args.repeats, device=args.device)
        for name in fns:
            rows.append({"grid": grid, "tokens": 1 + grid * grid, "path": name, "seconds": medians[name],
                         "speedup_vs_sdpa": medians["sdpa"] / medians[name], **memory(fns[name], inputs, args.device)})

    memory_key = "peak_bytes" if args.device == "cuda" else "saved_bytes"
    print(f"{'tokens':>6} {'path':13} {'ms':>9} {'x sdpa':>7} {memory_key + ' (MiB)':>18}")
    for row in rows:
        print(f"{row['tokens']:6d} {row['path']:13} {row['seconds'] * 1e3:9.2f} {row['speedup_vs_sdpa']:7.2f} "
              f"{row[memory_key] / 2 ** 20:18.2f}")
    largest = max(r["tokens"] for r in rows)
    for path, target in TARGETS.items():
        row = next(r for r in rows if r["tokens"] == largest and r["path"] == path)
        verdict = "ok" if row["speedup_vs_sdpa"] >= target else "MISS"
        print(f"{path} at {largest} tokens: {row['speedup_vs_sdpa']:.1f}x dense SDPA (target >= {target}x) {verdict}")
    for path in ("window-paper", "dense-paper"):
        sizes = [r for r in rows if r["path"] == path]
        if len(sizes) >= 2:
            growth = math.log(sizes[-1][memory_key] / sizes[0][memory_key]) / math.log(sizes[-1]["tokens"] / sizes[0]["tokens"])
            print(f"{path}: memory grows as tokens^{growth:.2f}")
    path = write_json(f"scaling-{args.device}", {"targets": TARGETS, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
