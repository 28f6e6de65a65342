"""Datasets on disk: torchvision's named sets and ImageFolder trees (docs/DESIGN.md, section 6).

torchvision sets (``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``, ``svhn``) live under
``--data-dir`` and download only when asked to. An ImageFolder tree has ``train/`` and ``val/``
(ImageNet layout); small trees are decoded into memory, large ones stream through a DataLoader.
Every failure to find or read data is a ``DataError`` naming the path and the flag that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from ..errors import ConfigError, DataError
from .images import ImageData, channel_stats, resize_uint8, stratified_split

TORCHVISION_SETS = {
    # name: (torchvision class, has a train/test flag (else split=), horizontal flips make sense)
    "cifar10": ("CIFAR10", True, True),
    "cifar100": ("CIFAR100", True, True),
    "mnist": ("MNIST", True, False),
    "fashion-mnist": ("FashionMNIST", True, True),
    "svhn": ("SVHN", False, False),
}


def load_torchvision_data(name: str, data_dir: str | Path | None, *, image_size: int | None = None,
                          download: bool = False, seed: int = 0, val_fraction: float = 0.1) -> ImageData:
    import torchvision

    class_name, train_flag, flip = TORCHVISION_SETS[name]
    root = Path(data_dir) if data_dir is not None else Path("data")
    if not download and not root.is_dir():
        raise DataError(f"--data-dir {root}: no such directory for {name} (point --data-dir at it, "
                        "or add --download to fetch it)")
    cls = getattr(torchvision.datasets, class_name)
    try:
        if train_flag:
            train, test = (cls(str(root), train=flag, download=download) for flag in (True, False))
        else:
            train, test = (cls(str(root), split=split, download=download) for split in ("train", "test"))
    except (RuntimeError, OSError, ValueError) as err:
        hint = "" if download else " (add --download to fetch it)"
        raise DataError(f"--data-dir {root}: cannot read {name}: {str(err).splitlines()[0]}{hint}") from None

    def as_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.as_tensor(dataset.data)
        if data.dim() == 3:  # (N, H, W) grey
            data = data.unsqueeze(1)
        elif data.shape[-1] == 3:  # (N, H, W, C)
            data = data.permute(0, 3, 1, 2)
        labels = getattr(dataset, "targets", None)
        labels = getattr(dataset, "labels", None) if labels is None else labels
        return data.contiguous(), torch.as_tensor(labels, dtype=torch.long)

    (train_x, train_y), (test_x, test_y) = as_tensors(train), as_tensors(test)
    size = image_size or train_x.shape[-1]
    if size != train_x.shape[-1]:
        train_x, test_x = (resize_uint8(x, size) for x in (train_x, test_x))
    index = stratified_split(train_y, {"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
    splits = {"train": (train_x[index["train"]], train_y[index["train"]]),
              "val": (train_x[index["val"]], train_y[index["val"]]),
              "test": (test_x, test_y)}
    mean, std = channel_stats(splits["train"][0][:10000])
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return ImageData(name, num_classes, train_x.shape[1], size, splits, mean, std, crop_padding=max(1, size // 8),
                     flip=flip, description=f"torchvision {class_name} from {root}, {val_fraction:.0%} of train held out")


# An optional file at a tree's root: settings of the data itself, read with yaml.safe_load. Today
# one, ``flip: false`` for images whose mirror image means something else (digits, text).
FOLDER_SETTINGS = "maitsearch.yaml"


def folder_settings(root: Path) -> dict:
    """The tree's ``maitsearch.yaml``, checked: {} when there is none."""
    import yaml

    path = root / FOLDER_SETTINGS
    if not path.is_file():
        return {}
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"{path}: unreadable ({str(err).splitlines()[0]})") from None
    if not isinstance(settings, dict) or set(settings) - {"flip", "description"}:
        raise DataError(f"{path}: expected a mapping with flip (true/false) and description only")
    if not isinstance(settings.get("flip", True), bool):
        raise DataError(f"{path}: flip {settings['flip']!r}: expected true or false")
    return settings


def load_folder_data(path: str | Path, *, image_size: int, max_in_memory: int = 20000):
    """An ImageFolder tree: ``train/<class>/*`` and ``val/<class>/*`` (and ``test/`` if present,
    else val doubles as test). Small trees are decoded into memory at ``image_size``; larger ones
    (ImageNet) stream from disk through a DataLoader (``StreamingFolderData``). Training batches
    are flipped at random unless the tree's ``maitsearch.yaml`` says ``flip: false``."""
    from torchvision.datasets import ImageFolder

    root = Path(path)
    settings = folder_settings(root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DataError(f"--data {root}: expected an ImageFolder tree with {split}/<class>/ images "
                            f"(ImageNet layout), but {root / split} is missing")
    folders = {}
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            continue
        try:
            folders[split] = ImageFolder(str(root / split))
        except (FileNotFoundError, RuntimeError) as err:
            raise DataError(f"--data {root}: no images under {root / split}: {str(err).splitlines()[0]}") from None
        if folders[split].classes != folders["train"].classes:
            raise DataError(f"--data {root}: {split}/ and train/ have different class folders; every split "
                            "needs the same classes")
    folders.setdefault("test", folders["val"])
    flip = settings.get("flip", True)
    if sum(len(folder) for folder in folders.values()) > max_in_memory:
        return StreamingFolderData(root, folders, image_size, flip=flip)
    loaded = {split: _decode(root, folder, image_size) for split, folder in folders.items()}
    mean, std = channel_stats(loaded["train"][0])
    return ImageData(root.name, len(folders["train"].classes), 3, image_size, loaded, mean, std,
                     crop_padding=max(1, image_size // 8), flip=flip,
                     description=settings.get("description") or f"ImageFolder {root}")


def _decode(root: Path, folder, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.transforms import functional as TF

    images = []
    for file, _ in folder.samples:
        try:
            image = folder.loader(file).convert("RGB")
        except OSError as err:
            raise DataError(f"--data {root}: cannot read image {file}: {err}") from None
        images.append(TF.pil_to_tensor(TF.resize(image, [image_size, image_size], antialias=True)))
    return torch.stack(images), torch.tensor(folder.targets, dtype=torch.long)


class StreamingFolderData:
    """An ImageFolder tree read from disk batch by batch, with DeiT's transforms scaled to
    ``image_size``: random-resized crops and flips for training, resize and centre crop
    otherwise. Offers ``ImageData``'s ``size`` and ``batches``."""

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's

    def __init__(self, root: Path, folders: dict, image_size: int, flip: bool = True):
        from torchvision import transforms as T

        self.name, self.folders, self.image_size = root.name, folders, image_size
        self.num_classes, self.in_chans = len(folders["train"].classes), 3
        self.mean, self.std = self.MEAN, self.STD
        normalise = [T.ToTensor(), T.Normalize(self.MEAN, self.STD)]
        flips = [T.RandomHorizontalFlip()] if flip else []
        self.train_transform = T.Compose([T.RandomResizedCrop(image_size), *flips, *normalise])
        self.eval_transform = T.Compose([T.Resize(int(image_size / 0.875)), T.CenterCrop(image_size), *normalise])

    def size(self, split: str) -> int:
        return len(self.folders[split])

    def label_parts(self) -> dict[str, tuple[int, int]]:
        return {}  # one task

    def with_shift(self, pixels: int) -> "StreamingFolderData":
        raise ConfigError("proxy.shift_augment: a streamed ImageFolder tree has its own random-resized crops; "
                          "set shift_augment to 0")

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import copy
        import os

        from torch.utils.data import DataLoader

        dataset = copy.copy(self.folders[split])
        dataset.transform = self.train_transform if shuffle else self.eval_transform
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                            generator=torch.Generator().manual_seed(seed), num_workers=min(8, os.cpu_count() or 1),
                            worker_init_fn=_seed_worker(seed), persistent_workers=False)
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def _seed_worker(seed: int):
    def init(worker_id: int) -> None:
        torch.manual_seed(seed * 1000 + worker_id)  # augmentation draws from torch's RNG

    return init
