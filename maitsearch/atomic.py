"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a temp file private to this writer (pid + random suffix, so two workers
sharing a run folder never write the same temp file), is fsynced, then renamed over the
target. The folder is fsynced too, so the rename itself survives a power cut.

A folder that is read-only, full or over quota (or a file size limit) ends the write with one
``DiskError`` naming the file; the temp file is removed where the folder still allows it, and
the target keeps its old content. ``check_writable`` tries a folder before a command writes
anything in it, so that fault is found before the work starts.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable, IO

from .errors import ConfigError, DiskError

# What a disk that cannot take the write answers: read-only (EROFS, or EACCES/EPERM for a folder
# made read-only by its mode), full (ENOSPC), over quota (EDQUOT), or over RLIMIT_FSIZE (EFBIG).
DISK_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_error(path: str | os.PathLike, err: OSError) -> DiskError:
    """One line naming the file and what the disk said; the errno travels with it."""
    reason = err.strerror or os.strerror(err.errno or 0)
    fault = DiskError(f"cannot write {path}: {reason}; make room or make the folder writable, "
                      "then run the same command again to resume")
    fault.errno = err.errno  # one argument keeps str() to the line alone
    return fault


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
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a folder gone read-only keeps the temp file; it is never read as the target
            pass
        if isinstance(err, OSError) and not isinstance(err, DiskError) and err.errno in DISK_ERRNOS:
            raise disk_error(target, err) from None
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


def check_writable(folder: Path, flag: str) -> None:
    """The folder exists, or its nearest existing ancestor is a folder that takes a new folder:
    tried for real with a temporary folder, removed at once (access bits do not bind root, and
    /proc refuses even root)."""
    probe = folder.resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {folder}: {probe} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".maitsearch-probe-", dir=probe))
    except OSError as err:
        raise ConfigError(f"{flag} {folder}: cannot create folders in {probe} ({err.strerror})") from None
