"""Training-step time of MaiT over timm DeiT, measured side by side in one process.

    python benchmarks/step.py [--placements sch1,sch2,all,soft] [--repeats 10] [--device cpu|cuda]

Cases: mait_tiny (depth 12) against deit_tiny_patch16_224 at batch 32 (224 x 224, 197 tokens), and
the proxy size (width 64, 4 heads, depth 12, 8x8 grid, batch 64). Every model of a case holds the
baseline's weights, and the models are timed round-robin (median of the repeats). ``deit-copy``
is a second, identical DeiT: its ratio is the measurement's own noise. Target: <= 1.05, goal 1.00
(the founding brief's yardstick for a mask that costs nothing). Writes benchmarks/out/step-<device>.json.
"""

from __future__ import annotations

import argparse

import timm
import torch

import maitsearch  # noqa: F401  (registers mait_*)
from maitsearch import MaskSpec, apply_mask_spec
from maitsearch.spec import preset

try:
    from .common import interleaved_medians, train_step, write_json
except ImportError:
    from common import interleaved_medians, train_step, write_json

TARGET, GOAL = 1.05, 1.00
CASES = {
    "tiny@224": dict(make=lambda: timm.create_model("deit_tiny_patch16_224", num_classes=1000), batch=(32, 3, 224)),
    "proxy": dict(make=lambda: timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=64,
                                                 depth=12, num_heads=4, num_classes=10), batch=(64, 3, 32)),
}


def placement(name: str, layers: int, heads: int) -> MaskSpec:
    if name == "soft":  # every head soft at alpha 0.5: the soft-mask search's training
        return MaskSpec(layers=layers, heads=heads, masks=[[]] * layers, soft=[[0.5] * heads] * layers)
    return preset(name, layers, heads)


def models_for(case: str, placements: list[str], device: str):
    torch.manual_seed(0)
    make, (batch, chans, size) = CASES[case]["make"], CASES[case]["batch"]
    baseline = make()
    models = {"deit": baseline}
    for name in ["deit-copy", *placements]:
        model = make()
        model.load_state_dict(baseline.state_dict())
        if name != "deit-copy":
            apply_mask_spec(model, placement(name, len(model.blocks), model.blocks[0].attn.num_heads))
        models[name] = model
    images = torch.randn(batch, chans, size, size, device=device)
    labels = torch.randint(0, baseline.num_classes, (batch,), device=device)
    return {name: model.to(device) for name, model in models.items()}, images, labels


def main(argv=None, default_placements: str = "sch1,sch2,all,soft", name: str = "step") -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", default=default_placements)
    parser.add_argument("--cases", default="tiny@224,proxy")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    args = parser.parse_args(argv)
    placements = [p for p in args.placements.split(",") if p]
    dtype = torch.bfloat16 if args.bf16 else None

    rows = []
    for case in args.cases.split(","):
        models, images, labels = models_for(case, placements, args.device)
        steps = {n: train_step(m, images, labels, autocast_dtype=dtype) for n, m in models.items()}
        medians = interleaved_medians(steps, warmup=args.warmup, repeats=args.repeats, device=args.device)
        for model in ["deit-copy", *placements]:
            ratio = medians[model] / medians["deit"]
            rows.append({"case": case, "model": model, "deit_s": medians["deit"], "model_s": medians[model],
                         "ratio": ratio, "meets_target": ratio <= TARGET, "meets_goal": ratio <= GOAL})

    print(f"{'case':10} {'model':10} {'deit s':>8} {'model s':>8} {'ratio':>6}  target <= {TARGET}, goal <= {GOAL}")
    for row in rows:
        verdict = "goal" if row["meets_goal"] else ("ok" if row["meets_target"] else "MISS")
        if row["model"] == "deit-copy":
            verdict = "(noise floor)"
        print(f"{row['case']:10} {row['model']:10} {row['deit_s']:8.4f} {row['model_s']:8.4f} {row['ratio']:6.3f}  "
              f"{verdict}")
    path = write_json(f"{name}-{args.device}{'-bf16' if args.bf16 else ''}",
                      {"target": TARGET, "goal": GOAL, "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
