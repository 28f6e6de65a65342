"""The embedded data: scikit-learn's handwritten digits (no network), and proxy tasks derived
from them, harder than plain digits, where locality matters.

Plain digits are centred and 8x8: a small ViT either barely learns them (short budgets) or
saturates (long ones), and neither ranks mask placements. A digit placed at a random spot on a
larger canvas, among clutter made of fragments of other digits, must be found before it can be
read: a task for local feature detectors, still generated in a second from data that ships with
scikit-learn. Every image is a deterministic function of the seed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import DataError
from .images import ImageData, channel_stats, resize, stratified_split, to_uint8

DIGITS_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 8x8 digits as floats in [0, 1] (N, 1, 8, 8), and their labels."""
    pixels, labels = digits_arrays()
    images = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return images, torch.tensor(labels, dtype=torch.long)


def digits_arrays():
    """scikit-learn's digits as NumPy arrays: pixels (N, 64) in 0..16 and labels (N,).

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, found without
    importing the package): importing scikit-learn and SciPy costs about a second, paid by every
    worker process and CLI call. ``load_digits`` stays the fallback should that file ever move."""
    spec = importlib.util.find_spec("sklearn")
    shipped = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if shipped is not None and shipped.is_file():
        table = np.loadtxt(shipped, delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def load_digits_data(image_size: int = 16, seed: int = 0) -> ImageData:
    """Plain digits, upsampled to ``image_size``; a fixed stratified 60/20/20 split; no
    augmentation (digits are centred and flips change their meaning)."""
    images, labels = digits_tensors()
    images = to_uint8(resize(images, image_size))
    index = stratified_split(labels, DIGITS_SPLIT, seed=seed)
    splits = {name: (images[idx], labels[idx]) for name, idx in index.items()}
    mean, std = channel_stats(splits["train"][0])
    return ImageData("digits", 10, 1, image_size, splits, mean, std,
                     description="scikit-learn digits, 8x8 upsampled, 60/20/20 stratified split")


@dataclass(frozen=True)
class CanvasTask:
    """Digits scattered on a canvas. Splits are made over *source* digits, so no test digit
    was seen in training, even at another position."""

    name: str
    canvas: int = 24  # image side in pixels
    digit: int = 12  # digit side after upsampling from 8x8
    clutter: int = 0  # fragments of other digits per image
    fragment: int = 4  # fragment side in pixels
    copies: int = 1  # training images per source digit, each at its own position
    eval_copies: int = 1  # validation/test images per source digit: more positions, less measurement noise
    split: dict = field(default_factory=lambda: {"train": 0.5, "val": 0.2, "test": 0.3})
    description: str = ""
    generator_offset: ClassVar[int] = 10_007  # each task draws its own random stream from a seed
    more_copies_offset: ClassVar[int] = 1_000_003  # and ``train_copies``' extra positions another

    def _sources(self, image_size: int | None, seed: int):
        """What every canvas task starts from: the source digits at ``digit`` pixels, their labels,
        the task's generator for ``seed``, and the split over source digits (so no test digit is
        seen in training, even elsewhere on the canvas)."""
        if image_size not in (None, self.canvas):
            raise DataError(f"{self.name} is generated at {self.canvas}x{self.canvas}; set the proxy's "
                            f"image_size to {self.canvas}")
        digits, labels = digits_tensors()
        digits = resize(digits, self.digit).clamp(0, 1)
        generator = torch.Generator().manual_seed(self.generator_offset + seed)
        return digits, labels, generator, stratified_split(labels, self.split, seed=seed)

    def build(self, image_size: int | None = None, seed: int = 0, train_copies: int = 1) -> ImageData:
        """The task's images; with ``train_copies`` k, the training split holds k times its images:
        the task's own first, then k - 1 more positions of every training digit, drawn from a
        stream of their own, so the validation and test images (and the normalisation, from the
        first copy) are exactly those of k = 1, and a larger k extends a smaller one."""
        digits, labels, generator, index = self._sources(image_size, seed)
        splits = {}
        for name, members in index.items():
            sources = members.repeat(self.copies if name == "train" else self.eval_copies)
            images = to_uint8(self._compose(digits, sources, generator))
            splits[name] = (images, labels[sources])
        mean, std = channel_stats(splits["train"][0])
        if train_copies > 1:
            more = torch.Generator().manual_seed(self.generator_offset + self.more_copies_offset + seed)
            sources = index["train"].repeat(self.copies)
            extra = [to_uint8(self._compose(digits, sources, more)) for _ in range(train_copies - 1)]
            splits["train"] = (torch.cat([splits["train"][0], *extra]), labels[sources].repeat(train_copies))
        info = {"canvas": self.canvas, "digit": self.digit, "clutter": self.clutter, "copies": self.copies,
                "eval_copies": self.eval_copies, "split": dict(self.split)}
        return ImageData(self.name, 10, 1, self.canvas, splits, mean, std, description=self.description,
                         info={**info, **({"train_copies": train_copies} if train_copies > 1 else {})})

    def _compose(self, digits: torch.Tensor, sources: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, d, f = len(sources), self.canvas, self.digit, self.fragment
        images = torch.zeros(n, 1, c, c)
        for _ in range(self.clutter):  # fragments of random other digits, under the target digit
            donors = torch.randint(0, len(digits), (n,), generator=generator)
            fy, fx = (torch.randint(0, d - f + 1, (n,), generator=generator) for _ in range(2))
            py, px = (torch.randint(0, c - f + 1, (n,), generator=generator) for _ in range(2))
            for i in range(n):
                piece = digits[donors[i], :, fy[i]:fy[i] + f, fx[i]:fx[i] + f]
                window = images[i, :, py[i]:py[i] + f, px[i]:px[i] + f]
                torch.maximum(window, piece, out=window)
        ys, xs = (torch.randint(0, c - d + 1, (n,), generator=generator) for _ in range(2))
        for i in range(n):
            window = images[i, :, ys[i]:ys[i] + d, xs[i]:xs[i] + d]
            torch.maximum(window, digits[sources[i]], out=window)
        return images


@dataclass(frozen=True)
class MirrorTask(CanvasTask):
    """Is the right half the mirror image of the left? Fragments of digits fill the left half;
    the right half mirrors it (label 1) or mirrors it rolled vertically (label 0). Both halves
    always hold the same ink, so no patch can answer alone: the label lives in patch pairs up to
    the whole image apart, a task where masking every head must cost accuracy."""

    fragments: int = 3  # digit fragments on the left half
    generator_offset: ClassVar[int] = 40_013
    images_per_digit: int = 2  # images whose fragments come from each source digit's split

    def build(self, image_size: int | None = None, seed: int = 0) -> ImageData:
        digits, labels, generator, index = self._sources(image_size, seed)
        splits = {}
        for name, members in index.items():
            mirrored = torch.rand(len(members) * self.images_per_digit, generator=generator) < 0.5
            images = torch.stack([self._pair(digits, members, bool(m), generator) for m in mirrored])
            splits[name] = (to_uint8(images), mirrored.long())
        mean, std = channel_stats(splits["train"][0])
        return ImageData(self.name, 2, 1, self.canvas, splits, mean, std, description=self.description,
                         info=self._info())

    def _info(self) -> dict:
        return {"canvas": self.canvas, "fragment": self.fragment, "fragments": self.fragments,
                "images_per_digit": self.images_per_digit, "split": dict(self.split)}

    def _pair(self, digits: torch.Tensor, members: torch.Tensor, mirrored: bool,
              generator: torch.Generator) -> torch.Tensor:
        c, f, half = self.canvas, self.fragment, self.canvas // 2
        left = torch.zeros(1, c, half)
        for _ in range(self.fragments):
            donor = int(members[torch.randint(0, len(members), (1,), generator=generator)])
            fy, fx = (int(v) for v in torch.randint(0, self.digit - f + 1, (2,), generator=generator))
            py = int(torch.randint(0, c - f + 1, (1,), generator=generator))
            px = int(torch.randint(0, half - f + 1, (1,), generator=generator))
            window = left[:, py:py + f, px:px + f]
            torch.maximum(window, digits[donor, :, fy:fy + f, fx:fx + f], out=window)
        return torch.cat([left, self._right_half(left, mirrored, generator)], dim=-1)

    def _right_half(self, left: torch.Tensor, matches: bool, generator: torch.Generator) -> torch.Tensor:
        right = left.flip(-1)
        if not matches:  # a roll of at least 3 pixels either way: never the mirror by accident
            right = right.roll(int(torch.randint(3, self.canvas - 2, (1,), generator=generator)), dims=1)
        return right


@dataclass(frozen=True)
class CopyTask(MirrorTask):
    """Is the right half a copy of the left? As the mirror task, but the right half repeats the
    left one moved by half the canvas (label 1), or moved and rolled vertically (label 0). The
    mirror's seam, where a patch and its partner are neighbours, is gone: every patch's partner
    is half the canvas away. With ``jitter``, a copy is also rolled up to that many pixels either
    way, so patches no longer line up with their partners': a match was meant to be judged on the
    neighbourhood, a job for local heads, with finding the partner one for global heads. Masking
    every head does lose here, but no placement matched better than the unmasked model
    (docs/DESIGN.md, section 10)."""

    jitter: int = 0  # pixels a copy may be off, each way, in each direction
    generator_offset: ClassVar[int] = 50_021

    def _info(self) -> dict:
        return {**super()._info(), "jitter": self.jitter}

    def _right_half(self, left: torch.Tensor, matches: bool, generator: torch.Generator) -> torch.Tensor:
        right = left
        if self.jitter:
            dy, dx = (int(v) for v in torch.randint(-self.jitter, self.jitter + 1, (2,), generator=generator))
            right = right.roll((dy, dx), dims=(1, 2))
        if not matches:  # rolled further than any copy's jitter: never a copy by accident
            low, high = 3 + self.jitter, self.canvas - 2 - self.jitter
            right = right.roll(int(torch.randint(low, high, (1,), generator=generator)), dims=1)
        return right


@dataclass(frozen=True)
class CueTask(CanvasTask):
    """Two digits side by side along the bottom of the canvas, and a small square in the top
    row over one of them: the label is the class of the digit under the square. The square is
    rows of patches away from either digit, so a patch of a digit learns which digit counts only
    by attending that far; a sum of local features over the image holds both digits' classes
    and the square's side, but not which class goes with the side.

    With ``lift``, each digit sits at its own random height, up to ``lift`` pixels above the
    bottom, so a digit must be found before it is read, the job local heads did well on
    digits-shift, while binding it to the square still needs global heads."""

    cue: int = 3  # side of the square, in pixels: one patch at patch size 3
    generator_offset: ClassVar[int] = 70_001
    images_per_digit: int = 2  # images in which each source digit is the one under the square
    lift: int = 0  # pixels a digit may sit above the bottom edge, drawn per digit

    def build(self, image_size: int | None = None, seed: int = 0) -> ImageData:
        digits, labels, generator, index = self._sources(image_size, seed)
        c, d, half = self.canvas, self.digit, self.canvas // 2
        splits = {}
        for name, members in index.items():
            chosen = members.repeat(self.images_per_digit)
            others = members[torch.randint(0, len(members), (len(chosen),), generator=generator)]
            right = torch.rand(len(chosen), generator=generator) < 0.5  # the chosen digit's side
            cue_x = torch.randint(0, half - self.cue + 1, (len(chosen),), generator=generator)
            # drawn only when asked for, so digits-cue keeps its random stream and its images
            lifts = (torch.randint(0, self.lift + 1, (len(chosen), 2), generator=generator) if self.lift
                     else torch.zeros(len(chosen), 2, dtype=torch.long))
            images = torch.zeros(len(chosen), 1, c, c)
            for i in range(len(chosen)):
                first, second = (others[i], chosen[i]) if right[i] else (chosen[i], others[i])
                top_left, top_right = (c - d - int(lift) for lift in lifts[i])
                images[i, :, top_left:top_left + d, :d] = digits[first]
                images[i, :, top_right:top_right + d, half:half + d] = digits[second]
                x = int(cue_x[i]) + (half if right[i] else 0)
                images[i, :, :self.cue, x:x + self.cue] = 1.0
            splits[name] = (to_uint8(images), labels[chosen])
        mean, std = channel_stats(splits["train"][0])
        return ImageData(self.name, 10, 1, c, splits, mean, std, description=self.description,
                         info={"canvas": c, "digit": d, "cue": self.cue, "images_per_digit": self.images_per_digit,
                               "split": dict(self.split), **({"lift": self.lift} if self.lift else {})})


@dataclass(frozen=True)
class MixedTask:
    """Several canvas tasks in one: each split holds every part's images of that split, the
    labels of part k shifted past the classes of the parts before it. Every part is built with
    the same seed and the same split over source digits, so no digit of the validation or test
    images was seen in training, in any part. A mix of a task where locality helps with one
    where it cannot suffice is meant to be a task on which neither extreme, no mask or a mask on
    every head, is the best placement (measured: results/shift-copy-*)."""

    name: str
    parts: tuple[CanvasTask, ...]
    description: str = ""

    def __post_init__(self):
        if len({(part.canvas, tuple(sorted(part.split.items()))) for part in self.parts}) != 1:
            raise DataError(f"{self.name}: every part needs the same canvas and the same split over source digits")

    @property
    def canvas(self) -> int:
        return self.parts[0].canvas

    def build(self, image_size: int | None = None, seed: int = 0) -> ImageData:
        built = [part.build(image_size, seed=seed) for part in self.parts]
        offsets = [sum(data.num_classes for data in built[:k]) for k in range(len(built))]
        splits = {name: (torch.cat([data.splits[name][0] for data in built]),
                         torch.cat([data.splits[name][1] + offset for data, offset in zip(built, offsets)]))
                  for name in built[0].splits}
        mean, std = channel_stats(splits["train"][0])
        return ImageData(self.name, sum(data.num_classes for data in built), 1, self.canvas, splits, mean, std,
                         description=self.description,
                         info={"parts": {data.name: {"classes_from": offset, **data.info}
                                         for data, offset in zip(built, offsets)}})


SMALL_TRAIN = {"train": 0.3, "val": 0.35, "test": 0.35}

TASK_SPECS = {
    "digits-small": CanvasTask(
        "digits-small", canvas=16, digit=16, split=SMALL_TRAIN,
        description="plain digits upsampled to 16x16, trained on 30% and measured on 35% + 35%"),
    "digits-shift": CanvasTask(
        "digits-shift", canvas=24, digit=16, split=SMALL_TRAIN, eval_copies=3,
        description="a 16x16 digit at a random spot of a 24x24 canvas; trained on 30% of the digits, "
                    "measured on the other 70%, each at 3 spots"),
    "digits-canvas": CanvasTask(
        "digits-canvas", canvas=24, digit=12, clutter=4, copies=1,
        description="a 12x12 digit at a random spot of a 24x24 canvas among 4 fragments of other digits"),
    "digits-mirror": MirrorTask(
        "digits-mirror", canvas=24, digit=12, fragment=8, split={"train": 0.5, "val": 0.25, "test": 0.25},
        description="is the right half the mirror of the left? 3 digit fragments on a 24x24 canvas; "
                    "the label needs patches the whole image apart"),
    "digits-copy": CopyTask(
        "digits-copy", canvas=24, digit=12, fragment=8, jitter=2, split={"train": 0.5, "val": 0.25, "test": 0.25},
        description="is the right half a copy of the left, half the canvas away and up to 2 pixels off? 3 digit "
                    "fragments on a 24x24 canvas; the label needs patches half the image apart"),
    "digits-cue": CueTask(
        "digits-cue", canvas=24, digit=12, split={"train": 0.5, "val": 0.25, "test": 0.25},
        description="two digits along the bottom of a 24x24 canvas, labelled by the one under a small square "
                    "in the top row, 4 or more patch rows (at patch 3) above the digits"),
    "digits-cue-lift": CueTask(
        "digits-cue-lift", canvas=24, digit=12, lift=8, split={"train": 0.5, "val": 0.25, "test": 0.25},
        description="digits-cue with each digit at its own random height, up to 8 pixels above the bottom"),
    "digits-shift-copy": MixedTask(
        "digits-shift-copy",
        (CanvasTask("digits-shift-3", canvas=24, digit=16, split=SMALL_TRAIN, copies=3, eval_copies=3),
         CopyTask("digits-copy-3", canvas=24, digit=12, fragment=8, jitter=2, split=SMALL_TRAIN,
                  images_per_digit=3)),
        description="half digits-shift (a 16x16 digit at 3 random spots of a 24x24 canvas: classes 0-9), half "
                    "digits-copy (a copy, or not, of the left half on the right: classes 10 and 11); 30% of "
                    "the digits train, in both"),
}

TASKS = {name: task.build for name, task in TASK_SPECS.items()}


def grows_by_copies(name: str) -> bool:
    """Whether ``train_copies`` can grow this data's training split: the canvas tasks that place
    one digit per image (digits-shift, digits-small, digits-canvas) draw more positions of it."""
    task = TASK_SPECS.get(name)
    return isinstance(task, CanvasTask) and type(task).build is CanvasTask.build


def check_train_copies(name: str, train_copies) -> None:
    """``train_copies`` is a whole number of at least 1, and above 1 only for data it can grow."""
    if not isinstance(train_copies, int) or isinstance(train_copies, bool) or train_copies < 1:
        raise DataError(f"proxy.train_copies {train_copies!r}: expected a whole number of at least 1")
    if train_copies != 1 and not grows_by_copies(name):
        growable = ", ".join(n for n in TASK_SPECS if grows_by_copies(n))
        raise DataError(f"proxy.train_copies {train_copies}: {name} cannot grow its training split "
                        f"(train_copies applies to {growable})")
