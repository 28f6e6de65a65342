"""Datasets for proxies and full training (DESIGN.md section 6).

- ``digits``: scikit-learn's handwritten digits, shipped with scikit-learn: no network.
- derived digit tasks (``maitsearch.tasks``), built deterministically from the digits.
- torchvision sets ``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``, ``svhn`` under
  ``--data-dir``; they download only when asked to.
- any ImageFolder tree with ``train/`` and ``val/`` (ImageNet layout).

Small sets are held in memory as tensors and augmented a batch at a time, which keeps a proxy
trial's input pipeline far cheaper than its model on a 2-core CPU. ImageFolder trees stream
through a DataLoader. Either way ``ImageData.batches`` yields normalised ``(images, labels)``.
Every failure to find or read data is a ``DataError`` with a one-line message naming the path
and the flag that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

TORCHVISION_SETS = {
    # name: (torchvision class, has a train/test flag (else split=), horizontal flips make sense)
    "cifar10": ("CIFAR10", True, True),
    "cifar100": ("CIFAR100", True, True),
    "mnist": ("MNIST", True, False),
    "fashion-mnist": ("FashionMNIST", True, True),
    "svhn": ("SVHN", False, False),
}


class DataError(ValueError):
    """A dataset that cannot be found or read; ``str()`` is one line for the user."""


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


# ---- digits --------------------------------------------------------------------------------
DIGITS_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 8x8 digits as floats in [0, 1] (N, 1, 8, 8), and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.long)


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


# ---- torchvision sets ----------------------------------------------------------------------
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


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    parts = [resize(images[i:i + chunk].float(), size).round().clamp(0, 255).to(torch.uint8)
             for i in range(0, len(images), chunk)]
    return torch.cat(parts)


# ---- ImageFolder ---------------------------------------------------------------------------
def load_folder_data(path: str | Path, *, image_size: int, max_in_memory: int = 20000):
    """An ImageFolder tree: ``train/<class>/*`` and ``val/<class>/*`` (and ``test/`` if present,
    else val doubles as test). Small trees are decoded into memory at ``image_size``; larger ones
    (ImageNet) stream from disk through a DataLoader (``StreamingFolderData``)."""
    from torchvision.datasets import ImageFolder

    root = Path(path)
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
    if sum(len(folder) for folder in folders.values()) > max_in_memory:
        return StreamingFolderData(root, folders, image_size)
    loaded = {split: _decode(root, folder, image_size) for split, folder in folders.items()}
    mean, std = channel_stats(loaded["train"][0])
    return ImageData(root.name, len(folders["train"].classes), 3, image_size, loaded, mean, std,
                     crop_padding=max(1, image_size // 8), flip=True, description=f"ImageFolder {root}")


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

    def __init__(self, root: Path, folders: dict, image_size: int):
        from torchvision import transforms as T

        self.name, self.folders, self.image_size = root.name, folders, image_size
        self.num_classes, self.in_chans = len(folders["train"].classes), 3
        self.mean, self.std = self.MEAN, self.STD
        normalise = [T.ToTensor(), T.Normalize(self.MEAN, self.STD)]
        self.train_transform = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *normalise])
        self.eval_transform = T.Compose([T.Resize(int(image_size / 0.875)), T.CenterCrop(image_size), *normalise])

    def size(self, split: str) -> int:
        return len(self.folders[split])

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


# ---- entry point ---------------------------------------------------------------------------
def load_data(name: str = "digits", *, image_size: int | None = None, data_dir: str | Path | None = None,
              download: bool = False, seed: int = 0) -> ImageData:
    """``digits``, a derived digit task, a torchvision set name, or an ImageFolder path."""
    from . import tasks

    if name == "digits":
        return load_digits_data(image_size or 16, seed=seed)
    if name in tasks.TASKS:
        return tasks.TASKS[name](image_size=image_size, seed=seed)
    if name in TORCHVISION_SETS:
        return load_torchvision_data(name, data_dir, image_size=image_size, download=download, seed=seed)
    path = Path(name)
    if path.is_dir():
        if not any(path.iterdir()):
            raise DataError(f"--data {path}: the folder is empty (expected train/<class>/ and val/<class>/ images)")
        return load_folder_data(path, image_size=image_size or 32)
    known = ", ".join(["digits", *tasks.TASKS, *TORCHVISION_SETS])
    if path.exists() or "/" in name or name.startswith("."):
        raise DataError(f"--data {name}: not a folder (expected an ImageFolder tree, or one of {known})")
    raise DataError(f"--data {name}: unknown dataset and no such folder; use one of {known}, or a folder path")


def proxy_shape(name: str) -> dict:
    """The proxy image and patch size that suit a dataset: an 8x8 patch grid at a resolution
    close to the data's own. Empty for folders (the config decides)."""
    from . import tasks

    if name == "digits":
        return {"image_size": 16, "patch_size": 2}
    if name in tasks.TASK_SPECS:
        canvas = tasks.TASK_SPECS[name].canvas
        return {"image_size": canvas, "patch_size": max(1, canvas // 8)}
    if name in TORCHVISION_SETS:
        return {"image_size": 32, "patch_size": 4}
    return {}
