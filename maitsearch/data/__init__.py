"""The data layer: labelled images for proxies and full training (docs/DESIGN.md, section 6).

- ``digits``: scikit-learn's handwritten digits and the tasks derived from them (``digits-shift``,
  ``digits-small``, ``digits-canvas``, ``digits-mirror``, ``digits-cue``): embedded, no network.
- ``sources``: torchvision's named sets under ``--data-dir`` and ImageFolder trees.
- ``images``: ``ImageData`` and the helpers every source shares.

``load_data(name)`` picks the source; every source yields normalised ``(images, labels)``
batches through ``batches(split, batch_size, shuffle=..., seed=...)``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .digits import TASK_SPECS, TASKS, check_train_copies, grows_by_copies, load_digits_data
from .images import ImageData
from .sources import TORCHVISION_SETS, load_folder_data, load_torchvision_data


def load_data(name: str = "digits", *, image_size: int | None = None, data_dir: str | Path | None = None,
              download: bool = False, seed: int = 0, train_copies: int = 1) -> ImageData:
    """``digits``, a derived digit task, a torchvision set name, or an ImageFolder path.
    ``train_copies`` grows a canvas task's training split (``ProxyConfig.train_copies``)."""
    check_train_copies(name, train_copies)
    if name == "digits":
        return load_digits_data(image_size or 16, seed=seed)
    if name in TASKS and train_copies != 1:
        return TASK_SPECS[name].build(image_size, seed=seed, train_copies=train_copies)
    if name in TASKS:
        return TASKS[name](image_size=image_size, seed=seed)
    if name in TORCHVISION_SETS:
        return load_torchvision_data(name, data_dir, image_size=image_size, download=download, seed=seed)
    path = Path(name)
    if path.is_dir():
        if not any(path.iterdir()):
            raise DataError(f"--data {path}: the folder is empty (expected train/<class>/ and val/<class>/ images)")
        return load_folder_data(path, image_size=image_size or 32)
    known = ", ".join(["digits", *TASKS, *TORCHVISION_SETS])
    if path.exists() or "/" in name or name.startswith("."):
        raise DataError(f"--data {name}: not a folder (expected an ImageFolder tree, or one of {known})")
    raise DataError(f"--data {name}: unknown dataset and no such folder; use one of {known}, or a folder path")


def proxy_shape(name: str) -> dict:
    """The proxy image and patch size that suit a dataset: an 8x8 patch grid at a resolution
    close to the data's own. Empty for folders (the config decides)."""
    if name == "digits":
        return {"image_size": 16, "patch_size": 2}
    if name in TASK_SPECS:
        canvas = TASK_SPECS[name].canvas
        return {"image_size": canvas, "patch_size": max(1, canvas // 8)}
    if name in TORCHVISION_SETS:
        return {"image_size": 32, "patch_size": 4}
    return {}


__all__ = ["ImageData", "DataError", "load_data", "proxy_shape", "grows_by_copies", "check_train_copies"]
