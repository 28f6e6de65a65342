"""Training-step time of MaiT over timm DeiT, measured side by side in one process.

    python benchmarks/attention.py [--repeats 10] [--device cpu]

Cases: mait_tiny (depth 12) with sch1 and sch2 against deit_tiny_patch16_224 at batch 32, and the
same placements at the proxy size (width 64, 4 heads, depth 12, 8x8 grid, batch 64). Both models
of a pair hold identical weights. Target: ratio <= 1.05 (DESIGN.md section 8).
"""

from __future__ import annotations

import argparse

import timm
import torch

import maitsearch  # noqa: F401  (registers mait_*)
from maitsearch import apply_mask_spec, preset

try:
    from .common import interleaved_medians, train_step, write_json
except ImportError:
    from common import interleaved_medians, train_step, write_json

TARGET = 1.05


def pair_models(kind: str, placements: list[str], device: str):
    """The timm baseline and one MaiT per placement, all with the baseline's weights."""
    if kind == "tiny@224":
        make = lambda: timm.create_model("deit_tiny_patch16_224", num_classes=1000)  # noqa: E731
        images = torch.randn(32, 3, 224, 224)
    else:
        make = lambda: timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4,  # noqa: E731
                                         embed_dim=64, depth=12, num_heads=4, num_classes=10)
        images = torch.randn(64, 3, 32, 32)
    torch.manual_seed(0)
    baseline = make()
    models = {"deit": baseline}
    for name in placements:
        model = make()
        model.load_state_dict(baseline.state_dict())
        depth, heads = len(model.blocks), model.blocks[0].attn.num_heads
        models[name] = apply_mask_spec(model, preset(name, depth, heads))
    num_classes = baseline.num_classes
    labels = torch.randint(0, num_classes, (images.shape[0],))
    return {name: m.to(device) for name, m in models.items()}, images.to(device), labels.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--placements", default="sch1,sch2")
    args = parser.parse_args()
    placements = args.placements.split(",")

    rows = []
    for kind in ("tiny@224", "proxy"):
        models, images, labels = pair_models(kind, placements, args.device)
        steps = {name: train_step(model, images, labels) for name, model in models.items()}
        medians = interleaved_medians(steps, warmup=args.warmup, repeats=args.repeats, device=args.device)
        for name in placements:
            ratio = medians[name] / medians["deit"]
            rows.append({"case": kind, "placement": name, "deit_s": medians["deit"], "mait_s": medians[name],
                         "ratio": ratio, "meets_target": ratio <= TARGET})

    print(f"{'case':10} {'placement':10} {'deit s':>8} {'mait s':>8} {'ratio':>6}  target <= {TARGET}")
    for row in rows:
        verdict = "ok" if row["meets_target"] else "MISS"
        print(f"{row['case']:10} {row['placement']:10} {row['deit_s']:8.4f} {row['mait_s']:8.4f} "
              f"{row['ratio']:6.3f}  {verdict}")
    path = write_json(f"attention-{args.device}", {"target": TARGET, "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
