"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a temp file private to this writer (pid + random suffix, so two workers
sharing a run folder never write the same temp file), is fsynced, then renamed over the
target. The folder is fsynced too, so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, IO


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems refuse to open directories; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fileobj)`` on a private temp file, then atomically move it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def save_torch(path: str | os.PathLike, obj) -> Path:
    """``torch.save`` through a temp file. Keep ``obj`` to tensors and plain containers so that
    it loads back with ``torch.load(..., weights_only=True)``."""
    import torch

    return write_with(path, lambda fh: torch.save(obj, fh))
