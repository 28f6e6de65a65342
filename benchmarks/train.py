"""Images per second of ``maitsearch train --recipe deit``: mait_tiny with Sch.2 against timm's
deit_tiny, the same recipe, side by side in one process.

    python benchmarks/train.py [--device cpu|cuda] [--batch 32] [--img-size 224] [--depth 12] [--repeats 10]

Each model gets the deit recipe's own parts (training/recipes.py: timm's Mixup and loss,
AdamW from create_optimizer_v2, the cosine schedule, bf16 autocast on CUDA) and trains on the
same batches, drawn once from the recipe's data pipeline (the embedded digits through timm's
create_transform at the model's size). The models are timed round-robin, one update each per
round after ``--warmup`` untimed rounds, and the median is reported; ``deit-copy`` is a second,
identical DeiT, so its ratio is the measurement's own noise. The data pipeline's own rate is
reported beside it, since it is the same for both models. Target: a time ratio <= 1.05
(as step.py's). Run it on an idle machine. Writes benchmarks/out/train-<device>.json.
"""

from __future__ import annotations

import argparse
import time

import timm
import torch

import maitsearch  # noqa: F401  (registers mait_*)
from maitsearch.data.datasets import load_image_sets
from maitsearch.spec import preset
from maitsearch.training.deit import build_trainer, train_step
from maitsearch.training.full import build_model
from maitsearch.training.recipes import TrainConfig, build_transforms

try:
    from .common import interleaved_medians, write_json
except ImportError:
    from common import interleaved_medians, write_json

TARGET = 1.05


def recipe_batches(config: TrainConfig, count: int, device: str):
    """``count`` training batches from the deit recipe's pipeline, and its images per second."""
    sets = load_image_sets(config.data, seed=0,
                           transforms=lambda mean, std: build_transforms(config, config.image_size, mean, std))
    loader = torch.utils.data.DataLoader(sets.train, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    batches, start = [], time.perf_counter()
    for images, labels in loader:
        batches.append((images.to(device), labels.to(device)))
        if len(batches) == count:
            break
    rate = len(batches) * config.batch_size / (time.perf_counter() - start)
    if len(batches) < count:
        raise SystemExit(f"--batch {config.batch_size}: the data gives only {len(batches)} batches; use a smaller one")
    return batches, sets, rate


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="per update (default: 128 on CUDA, 32 on the CPU)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    batch = args.batch or (128 if args.device.startswith("cuda") else 32)
    device = torch.device(args.device)

    config = TrainConfig(recipe="deit", model="mait_tiny_patch16_224", depth=args.depth, image_size=args.img_size,
                         batch_size=batch, device=args.device, epochs=300)
    batches, sets, loader_rate = recipe_batches(config, args.warmup + args.repeats, args.device)
    torch.manual_seed(0)
    models = {
        "deit": timm.create_model("deit_tiny_patch16_224", depth=args.depth, img_size=args.img_size,
                                  num_classes=sets.num_classes, in_chans=sets.in_chans, drop_path_rate=config.drop_path),
        "mait-sch2": build_model(config, preset("sch2", args.depth, 3), sets.num_classes, sets.in_chans),
    }
    models["deit-copy"] = timm.create_model("deit_tiny_patch16_224", depth=args.depth, img_size=args.img_size,
                                            num_classes=sets.num_classes, in_chans=sets.in_chans,
                                            drop_path_rate=config.drop_path)
    for name in ("mait-sch2", "deit-copy"):  # the same weights as the baseline
        models[name].load_state_dict(models["deit"].state_dict())
    steps = {}
    for name, model in models.items():
        trainer = build_trainer(config, model.to(device), device, sets.num_classes, updates_per_epoch=len(batches))
        feed = iter(batches)  # each model sees the same batches in the same order

        def step(trainer=trainer, feed=feed):
            images, labels = next(feed)
            train_step(trainer, images, labels)

        steps[name] = step
    medians = interleaved_medians(steps, warmup=args.warmup, repeats=args.repeats, device=device.type)

    rows = []
    for name in ("deit-copy", "mait-sch2"):
        ratio = medians[name] / medians["deit"]
        rows.append({"case": f"deit-recipe@{args.img_size}", "model": name, "batch": batch, "depth": args.depth,
                     "deit_s": medians["deit"], "model_s": medians[name], "ratio": ratio,
                     "deit_images_per_s": batch / medians["deit"], "model_images_per_s": batch / medians[name],
                     "meets_target": ratio <= TARGET})
    print(f"deit recipe at {args.img_size} px, depth {args.depth}, batch {batch}, {args.device}; "
          f"the data pipeline alone: {loader_rate:.0f} images/s")
    print(f"{'model':10} {'deit img/s':>11} {'model img/s':>12} {'ratio':>6}  target <= {TARGET}")
    for row in rows:
        verdict = "(noise floor)" if row["model"] == "deit-copy" else ("ok" if row["meets_target"] else "MISS")
        print(f"{row['model']:10} {row['deit_images_per_s']:11.1f} {row['model_images_per_s']:12.1f} "
              f"{row['ratio']:6.3f}  {verdict}")
    payload = {"target": TARGET, "repeats": args.repeats, "loader_images_per_s": loader_rate, "rows": rows}
    path = write_json(f"train-{device.type}", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
