"""Run ``maitsearch`` with test hooks around each proxy training, so a test acts at a known
point instead of after a sleep that a busy machine makes too short or too long.

    python tests/stall.py run --config quick ...      (the arguments of ``maitsearch``)

Environment:
- ``STALL_LOG``: a file that gets one line per training start and end of this process,
  ``start|end PID PLACEMENT-KEY SEED [STATUS] TIME`` (appended with O_APPEND: whole lines from
  several processes);
- ``STALL_AT``: the Nth training of this process (1 = the first) stops at its start, after its
  start line: it writes the file ``STALL_MARK`` and waits until the file ``STALL_GO`` exists,
  forever when that is not set (until the test kills it);
- ``STALL_FAULT_AT`` + ``STALL_FAULT_ERRNO`` (+ ``STALL_FAULT_UNDER``): from the Nth training
  on, every file write under that folder fails with that errno, as a full or read-only disk
  answers: the in-process fault for machines where no filesystem can be filled or remounted.

The library has no hook of its own: this wrapper replaces ``executors.fit`` before the CLI runs.
"""

from __future__ import annotations

import builtins
import os
import sys
import time
from pathlib import Path


def log(line: str) -> None:
    path = os.environ.get("STALL_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{line} {time.time():.3f}\n".encode())
        finally:
            os.close(fd)


def stall() -> None:
    mark, go = os.environ.get("STALL_MARK"), os.environ.get("STALL_GO")
    if mark:
        Path(mark).write_text(str(os.getpid()))
    while not (go and Path(go).exists()):
        time.sleep(0.05)


def start_disk_fault() -> None:
    """Every later open for writing, mkdir and rename under STALL_FAULT_UNDER fails with STALL_FAULT_ERRNO."""
    code = int(os.environ["STALL_FAULT_ERRNO"])
    under = os.path.realpath(os.environ.get("STALL_FAULT_UNDER", "/"))
    inside = lambda path: os.path.realpath(os.fspath(path)).startswith(under)  # noqa: E731
    fail = lambda path: OSError(code, os.strerror(code), os.fspath(path))  # noqa: E731
    real_open, real_os_open, real_replace, real_mkdir = builtins.open, os.open, os.replace, os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
            raise fail(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_replace(src, dst, *args, **kwargs):
        if inside(dst):
            raise fail(dst)
        return real_replace(src, dst, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            raise fail(path)
        return real_mkdir(path, *args, **kwargs)

    builtins.open, os.open, os.replace, os.mkdir = guarded_open, guarded_os_open, guarded_replace, guarded_mkdir


def install() -> None:
    from maitsearch.search import executors

    real_fit = executors.fit
    count = 0
    stall_at = int(os.environ.get("STALL_AT", "0"))
    fault_at = int(os.environ.get("STALL_FAULT_AT", "0"))

    def fit(spec, proxy, data, **kwargs):
        nonlocal count
        count += 1
        what = f"{os.getpid()} {spec.key()} {proxy.seed}"  # the canonical placement: equal ones share a cache key
        if count == fault_at:
            start_disk_fault()
        log(f"start {what}")
        if count == stall_at:
            stall()
        result = real_fit(spec, proxy, data, **kwargs)
        log(f"end {what} {result.status}")
        return result

    executors.fit = fit


if __name__ == "__main__":
    install()
    from maitsearch.cli import main

    sys.argv = ["maitsearch", *sys.argv[1:]]
    main()
