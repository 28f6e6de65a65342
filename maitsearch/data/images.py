"""Labelled image tensors in memory, and the helpers every dataset shares: splits, resizing,
bytes, channel statistics and a batch-at-a-time augmentation.

Small sets are held in memory as uint8 tensors and augmented a batch at a time, which keeps a
proxy trial's input pipeline far cheaper than its model on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F


@dataclass
class ImageData:
    """Labelled images split into train / val / test, with the proxy augmentation recipe."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (images (N, C, H, W), labels (N,))
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # random-crop padding in pixels; 0 = no crop
    flip: bool = False  # random horizontal flips
    description: str = ""
    info: dict = field(default_factory=dict)

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def label_parts(self) -> dict[str, tuple[int, int]]:
        """A mixed task's parts as label ranges, {part: (first class, last class + 1)}, so each
        part's accuracy can be read apart; empty for data of one task."""
        parts = sorted(((info["classes_from"], name) for name, info in (self.info.get("parts") or {}).items()))
        ends = [start for start, _ in parts[1:]] + [self.num_classes]
        return {name: (start, end) for (start, name), end in zip(parts, ends)}

    def with_shift(self, pixels: int) -> "ImageData":
        """The same data with random shifts of up to ``pixels`` in training batches (a random
        crop of the zero-padded image), drawn afresh every epoch."""
        return dataclasses.replace(self, crop_padding=int(pixels))

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised batches. With ``shuffle``, the order and the augmentation depend only on
        ``seed``, so an epoch is reproducible on its own (which makes resuming exact)."""
        images, labels = self.splits[split]
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            x = images[index]
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            if shuffle:
                x = self._augment(x, generator)
            yield ((x.to(device) - mean) / std), labels[index].to(device)

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            flips = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop of a zero-padded batch (DeiT's RandomCrop, a batch at a time)."""
    B, C, H, W = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (B,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (B,), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(W))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(B)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


def stratified_split(labels: torch.Tensor, fractions: dict[str, float], seed: int) -> dict[str, torch.Tensor]:
    """Indices per split, with every class spread over the splits in the given proportions."""
    generator = torch.Generator().manual_seed(seed)
    names = list(fractions)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for cls in labels.unique():
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        bounds = [0]
        for name in names[:-1]:
            bounds.append(bounds[-1] + round(fractions[name] * len(members)))
        bounds.append(len(members))
        for name, lo, hi in zip(names, bounds, bounds[1:]):
            out[name].append(members[lo:hi])
    return {name: torch.cat(parts).sort().values for name, parts in out.items()}


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch to ``size`` x ``size`` (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrinking = size < images.shape[-1]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] to bytes: a quarter of the memory, and the same path as photo datasets."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    parts = [resize(images[i:i + chunk].float(), size).round().clamp(0, 255).to(torch.uint8)
             for i in range(0, len(images), chunk)]
    return torch.cat(parts)
