"""torch Datasets of PIL images, for recipes whose augmentation is timm's (``create_transform``):
timm's transforms are written for photos on disk, the embedded tasks are uint8 tensors in memory.

``ImageDataset`` shows one split of an ``ImageData`` (the digit tasks, torchvision sets) as PIL
images at their own resolution, so timm's random-resized crop and RandAugment see the data as
it is; ImageFolder trees are torchvision's ``ImageFolder`` with the transform set. Either way
the augmentation is timm's, not re-written here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .images import ImageData

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageDataset(torch.utils.data.Dataset):
    """``(transform(PIL image), label)`` for each image of one split of ``data``."""

    def __init__(self, data: ImageData, split: str, transform: Callable | None = None):
        self.images, self.labels = data.splits[split]
        if self.images.dtype != torch.uint8:
            raise TypeError(f"{data.name}: PIL images need uint8 tensors, not {self.images.dtype}")
        self.mode = {1: "L", 3: "RGB"}[self.images.shape[1]]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        pixels = self.images[index]
        array = pixels[0].numpy() if self.mode == "L" else pixels.permute(1, 2, 0).contiguous().numpy()
        image = Image.fromarray(array, mode=self.mode)
        return (self.transform(image) if self.transform is not None else image), int(self.labels[index])


@dataclass
class ImageSets:
    """A training and a validation Dataset, and what a model and a normalisation need to know."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    num_classes: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


def load_image_sets(name: str, *, data_dir: str | Path | None = None, download: bool = False, seed: int = 0,
                    transforms: Callable[[tuple, tuple], tuple] | None = None) -> ImageSets:
    """The data ``load_data`` names, at its own resolution, as PIL Datasets. ``transforms(mean, std)``
    returns the (training, evaluation) transforms, made once the data's statistics are known:
    its own for in-memory sets, ImageNet's for folders (DeiT's)."""
    from . import load_data
    from .sources import load_folder_data

    make = transforms or (lambda mean, std: (None, None))
    if Path(name).is_dir():
        folders = load_folder_data(name, image_size=32, max_in_memory=-1).folders  # checks the tree, decodes nothing
        train_transform, eval_transform = make(IMAGENET_MEAN, IMAGENET_STD)
        train, val = copy.copy(folders["train"]), copy.copy(folders["val"])
        train.transform, val.transform = train_transform, eval_transform
        return ImageSets(train, val, len(folders["train"].classes), 3, IMAGENET_MEAN, IMAGENET_STD,
                         f"ImageFolder {name}")
    data = load_data(name, data_dir=data_dir, download=download, seed=seed)
    train_transform, eval_transform = make(data.mean, data.std)
    return ImageSets(ImageDataset(data, "train", train_transform), ImageDataset(data, "val", eval_transform),
                     data.num_classes, data.in_chans, tuple(data.mean), tuple(data.std), data.description)
