"""Inference latency of DeiT-tiny against MaiT-tiny (Sch.1, Sch.2, every head masked) at 224, 448
and 896 px, batch 1 and 8, in PyTorch eager and in onnxruntime, side by side in one run.

    python benchmarks/inference.py [--threads 2] [--repeats 5] [--quick]
    python benchmarks/inference.py --crossover [--threads 1]   # re-time the band kernel's token threshold

Every model is exported to ONNX (the dynamo exporter, as ``maitsearch export --onnx`` does) and
checked in onnxruntime against PyTorch (max abs difference, top-1 agreement on the batch). Each
row also gives the attention FLOPs the run computes (a band head: its rows x gw band; a dense
head: T x T) and ``attention_cost``, the share a window-only head would keep. With a GPU, a CUDA
eager column runs the FlexAttention kernel. Models are timed round-robin (benchmarks/common.py),
so onnxruntime's sessions run with spinning off: an idle session's threads would otherwise
busy-wait on the cores the next one runs on.

Targets (onnxruntime, 2 threads): every head masked >= 2x faster than DeiT at 896 px; Sch.2 no
slower than DeiT at 224 px (ratio <= 1.00), judged on the median of ``--rounds`` more timings of
the two alone, as one timing moves by a few percent from run to run. Writes
benchmarks/out/inference-cpu.json and a markdown table beside it (``--quick``: inference-quick.*,
a check that it runs, tiny sizes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import timm
import torch

import maitsearch  # noqa: F401  (registers the mait_* models)
from maitsearch.model import export
from maitsearch.model.attention import MaskedAttention
from maitsearch.model.locality import attention_cost
from maitsearch.spec import preset

try:
    from .common import OUT, interleaved_medians, write_json
except ImportError:
    from common import OUT, interleaved_medians, write_json

PLACEMENTS = ("none", "sch1", "sch2", "all")  # none: DeiT-tiny itself (timm's deit_tiny_patch16_224)
TARGETS = {"all_at_896_speedup_min": 2.0, "sch2_at_224_ratio_max": 1.00}
WIDTH, HEADS, DEPTH, PATCH = 192, 3, 12, 16


def build(placement: str, size: int, depth: int) -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights for every placement: MaiT shares DeiT's parameters
    if placement == "none":
        return timm.create_model("deit_tiny_patch16_224", img_size=size, depth=depth).eval()
    return timm.create_model("mait_tiny_patch16_224", mask_spec=placement, img_size=size, depth=depth).eval()


def attention_flops(model: torch.nn.Module, size: int) -> dict:
    """Attention matmul FLOPs per image (QK^T and PV, 2 per multiply-add) as exported, and the
    whole model's (linear layers too)."""
    side = size // PATCH
    n, tokens, d = side * side, side * side + 1, WIDTH // HEADS
    attention = 0
    for block in model.blocks:
        attn = block.attn
        kind = attn.inference_kernels["export"] if isinstance(attn, MaskedAttention) and attn.num_masked else "plain"
        hard = attn.num_hard if kind == "band" else 0
        band_keys = attn.window[0] * side + 1 if kind == "band" else tokens  # band + the class token
        attention += hard * 4 * d * (n * band_keys + tokens)  # patch rows over their band, the class row over all
        attention += (HEADS - hard) * 4 * d * tokens * tokens
    linear = len(model.blocks) * 24 * tokens * WIDTH ** 2 + 2 * n * WIDTH * 3 * PATCH ** 2
    return {"attention_gflops": attention / 1e9, "model_gflops": (attention + linear) / 1e9}


def cost(placement: str, size: int, depth: int) -> float:
    side = size // PATCH
    return attention_cost(preset(placement, depth, HEADS), (side, side), 1)


def onnx_runner(path: Path, images: torch.Tensor, threads: int):
    session = export.onnx_session(path, threads=threads, spin=False)  # four sessions take turns
    feed = {session.get_inputs()[0].name: images.numpy()}
    return lambda: session.run(None, feed)


def eager_runner(model: torch.nn.Module, images: torch.Tensor):
    def run():
        with torch.inference_mode():
            model(images)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="224,448,896")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and onnxruntime intra-op threads (2; --crossover: 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6,
                        help="more timings of DeiT against Sch.2 at the smallest size, whose target is within noise")
    parser.add_argument("--depth", type=int, default=DEPTH)
    parser.add_argument("--quick", action="store_true", help="sizes 64 and 96, depth 2, one repeat: does it run")
    parser.add_argument("--crossover", action="store_true", help="time one layer, dense against band, and exit")
    args = parser.parse_args()
    if args.crossover:
        return crossover(args.threads or 1)
    args.threads = args.threads or 2
    if args.quick:
        args.sizes, args.depth, args.repeats, args.rounds = "64,96", 2, 1, 1
    torch.set_num_threads(args.threads)
    sizes, batches = [int(s) for s in args.sizes.split(",")], [int(b) for b in args.batches.split(",")]
    runtimes = ["eager", "onnxruntime"] + (["cuda"] if torch.cuda.is_available() else [])

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            models = {p: build(p, size, args.depth) for p in PLACEMENTS}
            paths = {}
            for placement, model in models.items():
                paths[placement] = Path(folder) / f"{placement}-{size}.onnx"
                export.export_onnx(model, paths[placement])
            for batch in batches:
                images = export.example_images(models["none"], batch)
                parity = {p: export.onnx_parity(m, paths[p], images) for p, m in models.items()}
                seconds = {}
                for runtime in runtimes:
                    if runtime == "onnxruntime":
                        steps = sessions = {p: onnx_runner(paths[p], images, args.threads) for p in models}
                    elif runtime == "cuda":
                        steps = {p: eager_runner(m.to("cuda"), images.cuda()) for p, m in models.items()}
                    else:
                        steps = {p: eager_runner(m, images) for p, m in models.items()}
                    seconds[runtime] = interleaved_medians(steps, warmup=1, repeats=args.repeats,
                                                           device="cuda" if runtime == "cuda" else "cpu")
                    if runtime == "cuda":
                        models = {p: m.cpu() for p, m in models.items()}
                rounds = []
                if size == min(sizes):  # Sch.2's target is a few percent either way: time it again, apart
                    pair = {p: sessions[p] for p in ("none", "sch2")}
                    for _ in range(args.rounds):
                        medians = interleaved_medians(pair, warmup=1, repeats=args.repeats)
                        rounds.append(medians["sch2"] / medians["none"])
                for placement, model in models.items():
                    row = {"size": size, "tokens": (size // PATCH) ** 2 + 1, "batch": batch, "placement": placement,
                           "kernels": sorted({b.attn.inference_kernels["export"] for b in model.blocks
                                              if isinstance(b.attn, MaskedAttention) and b.attn.num_masked}),
                           "attention_cost": cost(placement, size, args.depth), **attention_flops(model, size),
                           "onnx_max_abs": parity[placement]["max_abs"],
                           "onnx_top1_agree": parity[placement]["top1_agree"]}
                    for runtime, medians in seconds.items():
                        row[f"{runtime}_ms"] = medians[placement] * 1e3
                        row[f"{runtime}_vs_deit"] = medians[placement] / medians["none"]
                    if placement == "sch2" and rounds:
                        row["onnxruntime_vs_deit_rounds"] = [round(r, 3) for r in (row["onnxruntime_vs_deit"], *rounds)]
                    rows.append(row)
                    print(_line(row, runtimes), flush=True)

    verdicts = _verdicts(rows, sizes)
    for line in verdicts:
        print(line)
    name = "inference-quick" if args.quick else f"inference-{'cuda' if 'cuda' in runtimes else 'cpu'}"
    path = write_json(name, {"targets": TARGETS, "threads": args.threads, "depth": args.depth, "rows": rows,
                             "verdicts": verdicts})
    (OUT / f"{name}.md").write_text(_markdown(rows, runtimes, verdicts))
    print(f"wrote {path} and {OUT / f'{name}.md'}")


def _line(row: dict, runtimes: list[str]) -> str:
    times = "  ".join(f"{r} {row[f'{r}_ms']:9.2f} ms ({row[f'{r}_vs_deit']:.2f}x)" for r in runtimes)
    return (f"{row['size']:4d}px b{row['batch']} {row['placement']:5s} attn {row['attention_gflops']:8.4f} GFLOP "
            f"cost {row['attention_cost']:.3f}  {times}  onnx |diff| {row['onnx_max_abs']:.1e} "
            f"top-1 {row['onnx_top1_agree']}/{row['batch']}")


def _verdicts(rows: list[dict], sizes: list[int]) -> list[str]:
    """The two targets, and the parity check the issue asks for, each with its margin."""
    out = []
    largest, smallest = max(sizes), min(sizes)
    for row in rows:
        if row["placement"] == "all" and row["size"] == largest:
            speedup = 1 / row["onnxruntime_vs_deit"]
            ok = speedup >= TARGETS["all_at_896_speedup_min"]
            out.append(f"all-masked at {largest}px, batch {row['batch']}: {speedup:.2f}x faster than DeiT in "
                       f"onnxruntime (target >= 2x) {'ok' if ok else 'MISS by ' + f'{2 - speedup:.2f}x'}")
        if row["placement"] == "sch2" and row["size"] == smallest:
            rounds = row.get("onnxruntime_vs_deit_rounds", [row["onnxruntime_vs_deit"]])
            ratio = statistics.median(rounds)
            ok = ratio <= TARGETS["sch2_at_224_ratio_max"]
            spread = f" (median of {len(rounds)} rounds, {min(rounds):.3f}-{max(rounds):.3f})" if len(rounds) > 1 else ""
            out.append(f"Sch.2 at {smallest}px, batch {row['batch']}: {ratio:.3f}x DeiT's time in onnxruntime{spread} "
                       f"(target <= 1.00) {'ok' if ok else f'MISS by {(ratio - 1) * 100:.1f}%'}"
                       + ("" if ok else f": at {row['tokens']} tokens a hard head's window saves less than the masks cost "
                                        "(the dense layer multiplies its (H, T, T) logits by the mask once more)"))
        if row["placement"] == "sch2" and row["size"] in sorted(sizes)[:2]:
            ok = row["onnx_max_abs"] <= 1e-4 and row["onnx_top1_agree"] == row["batch"]
            out.append(f"Sch.2 ONNX parity at {row['size']}px, batch {row['batch']}: max abs {row['onnx_max_abs']:.1e}, "
                       f"top-1 {row['onnx_top1_agree']}/{row['batch']} {'ok' if ok else 'MISS'}")
    return out


def _markdown(rows: list[dict], runtimes: list[str], verdicts: list[str]) -> str:
    head = ["px", "batch", "model", "kernel (export)", "attn GFLOP", "attention_cost"]
    head += [f"{r} ms" for r in runtimes] + [f"{r} / DeiT" for r in runtimes] + ["ONNX max abs", "top-1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["size"], row["batch"], "DeiT-tiny" if row["placement"] == "none" else f"MaiT-tiny {row['placement']}",
                 ",".join(row["kernels"]) or "-", f"{row['attention_gflops']:.3f}", f"{row['attention_cost']:.3f}"]
        cells += [f"{row[f'{r}_ms']:.2f}" for r in runtimes] + [f"{row[f'{r}_vs_deit']:.2f}" for r in runtimes]
        cells += [f"{row['onnx_max_abs']:.1e}", f"{row['onnx_top1_agree']}/{row['batch']}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines + [""] + [f"- {line}" for line in verdicts]) + "\n"


def crossover(threads: int) -> None:
    """One 192-wide, 3-head layer with 2 hard heads, dense against band, eager and onnxruntime:
    the token counts at which ``kernels.BAND_MIN_TOKENS`` should switch."""
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for side in (14, 16, 18, 20, 24):
            tokens = side * side + 1
            layers = {}
            for kernel in ("dense", "local"):  # eval mode: local means the band kernel
                torch.manual_seed(0)
                layers[kernel] = MaskedAttention(WIDTH, HEADS, alphas=[0.0, 0.0, 1.0], grid_size=(side, side),
                                                 kernel=kernel, qkv_bias=True).eval()
            for batch in (1, 8):
                x = torch.randn(batch, tokens, WIDTH)
                eager = interleaved_medians({k: eager_runner(m, x) for k, m in layers.items()}, warmup=2, repeats=15)
                onnx = {}
                for kernel, layer in layers.items():
                    path = Path(folder) / f"{kernel}.onnx"
                    with torch.no_grad(), export._quiet():
                        torch.onnx.export(layer, (x,), dynamo=True).save(str(path))
                    onnx[kernel] = onnx_runner(path, x, threads)
                ort = interleaved_medians(onnx, warmup=2, repeats=15)
                row = {"tokens": tokens, "batch": batch, "eager_band_vs_dense": eager["local"] / eager["dense"],
                       "onnx_band_vs_dense": ort["local"] / ort["dense"]}
                rows.append(row)
                print(f"{tokens:5d} tokens b{batch}: band/dense eager {row['eager_band_vs_dense']:.2f}, "
                      f"onnxruntime {row['onnx_band_vs_dense']:.2f}", flush=True)
    for runtime in ("eager", "onnx"):
        wins = [r["tokens"] for r in rows if all(o[f"{runtime}_band_vs_dense"] < 1 for o in rows
                                                if o["tokens"] == r["tokens"])]
        print(f"{runtime}: band faster at both batches from {min(wins) if wins else 'none of these'} tokens")
    print(f"wrote {write_json(f'inference-crossover-t{threads}', {'rows': rows})}")


if __name__ == "__main__":
    main()
