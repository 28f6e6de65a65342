"""Which device each search worker trains on: one worker per GPU, or round-robin over them.

A proxy trial fills a small part of one GPU, so a search on a GPU node runs one training
process per GPU (``--jobs`` left automatic), or ``--jobs N`` processes placed round-robin over
the GPUs. Each worker is pinned in its own process before CUDA starts there: its
``CUDA_VISIBLE_DEVICES`` names its one GPU, so the model, its data and any library it calls see
that GPU alone, as ``cuda:0``.

What a device setting (``--device``, ``proxy.device``) means for a search:

- ``cpu``: the CPU, as always (worker count from the free cores, search/executors.py);
- ``auto``: every visible GPU, else the CPU; ``cuda``: every visible GPU, an error without one;
- ``cuda:3``, ``cuda:0,1``: these GPUs (indices among the visible ones).

``CUDA_VISIBLE_DEVICES`` decides what is visible, as everywhere in CUDA. A process started by a
launcher that sets ``LOCAL_RANK`` (torchrun, or a script on a cluster node) takes only the GPU
of its local rank among those, so N such processes on a node share its GPUs one each.

Which GPU a worker got is not part of what it computes: trial-cache keys name the GPU model,
never its index (runs/cache.py), and a pool of different GPU models is refused, since one key
could not name them all.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from ..errors import ConfigError


def parse_device(text: str) -> tuple[str, tuple[int, ...] | None]:
    """``("cpu" | "auto" | "cuda", the GPU indices named, or None for all visible)``."""
    text = str(text).strip()
    if text in ("cpu", "auto", "cuda"):
        return text, None
    if text.startswith("cuda:"):
        try:
            indices = tuple(int(part) for part in text[len("cuda:"):].split(","))
        except ValueError:
            indices = ()
        if indices and min(indices) >= 0:
            twice = sorted({i for i in indices if indices.count(i) > 1})
            if twice:
                raise ConfigError(f"--device {text}: cuda:{twice[0]} is named twice")
            return "cuda", indices
    raise ConfigError(f"--device {text!r}: use auto, cpu, cuda, or GPU indices such as cuda:0 or cuda:0,1")


def visible_gpus() -> int:
    """How many GPUs this process sees (after ``CUDA_VISIBLE_DEVICES``); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_indices(device: str, *, gpu_count: int | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[int, ...]:
    """The GPUs a search on ``device`` trains on, as indices among the visible ones; ``()`` for
    the CPU. ``gpu_count`` and ``environ`` default to this machine's (tests pass their own)."""
    kind, named = parse_device(device)
    if kind == "cpu":
        return ()
    count = visible_gpus() if gpu_count is None else gpu_count
    if count == 0:
        if kind == "auto":
            return ()
        raise ConfigError(f"--device {device}: no CUDA GPU on this machine; use auto or cpu")
    for index in named or ():
        if index >= count:
            raise ConfigError(f"--device {device}: cuda:{index} is not there; this machine has "
                              f"{_count_phrase(count)}")
    chosen = named if named is not None else tuple(range(count))
    environ = os.environ if environ is None else environ
    if environ.get("LOCAL_RANK", "").strip():  # one of several processes a launcher started on this node
        try:
            rank = int(environ["LOCAL_RANK"])
        except ValueError:
            raise ConfigError(f"LOCAL_RANK {environ['LOCAL_RANK']!r}: expected a whole number") from None
        if not 0 <= rank < len(chosen):
            raise ConfigError(f"LOCAL_RANK {rank}: --device {device} gives this process "
                              f"{_count_phrase(len(chosen))} to choose from")
        chosen = (chosen[rank],)
    return chosen


def worker_devices(device: str, jobs: int, *, gpu_count: int | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Each worker's device, ``("cuda:0", "cuda:1", ...)``: ``jobs`` workers round-robin over the
    GPUs, one per GPU when ``jobs`` is 0; ``()`` when the search trains on the CPU."""
    gpus = gpu_indices(device, gpu_count=gpu_count, environ=environ)
    if not gpus:
        return ()
    count = jobs if jobs > 0 else len(gpus)
    return tuple(f"cuda:{gpus[i % len(gpus)]}" for i in range(count))


def check_devices(device: str, *, gpu_count: int | None = None,
                  gpu_name: Callable[[int], str] | None = None) -> tuple[int, ...]:
    """Every device problem as one line before anything starts: a bad setting, a GPU that is not
    there, or GPUs of different models in one pool. Returns the GPUs the search uses."""
    gpus = gpu_indices(device, gpu_count=gpu_count)
    if len(gpus) > 1:
        if gpu_name is None:
            import torch

            gpu_name = torch.cuda.get_device_name
        names = {index: gpu_name(index) for index in gpus}
        if len(set(names.values())) > 1:
            listed = ", ".join(f"cuda:{i} {name}" for i, name in names.items())
            raise ConfigError(f"--device {device}: the GPUs are of different models ({listed}); trial-cache keys "
                              "name one model, so pick GPUs of one model, such as --device cuda:"
                              f"{','.join(str(i) for i, n in names.items() if n == names[gpus[0]])}")
    return gpus


def pin_process(device: str) -> str:
    """Pin this process to ``device`` (``cuda:N``) and return the device to train on there.

    Called first thing in a worker process: ``CUDA_VISIBLE_DEVICES`` then names GPU N alone
    (mapped through the parent's own list, which may hold other numbers or UUIDs), and the
    worker trains on ``cuda:0``. Where CUDA already started in this process the variable is
    read too late, and ``torch.cuda.set_device`` pins it instead."""
    if not device.startswith("cuda:"):
        return device
    import torch

    index = int(device.split(":")[1])
    if torch.cuda.is_initialized():
        torch.cuda.set_device(index)
        return device
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    return "cuda:0"


def _count_phrase(count: int) -> str:
    names = "cuda:0" if count == 1 else f"cuda:0-{count - 1}"
    return f"{count} GPU{'s' if count != 1 else ''} ({names})"


__all__ = ["parse_device", "visible_gpus", "gpu_indices", "worker_devices", "check_devices", "pin_process"]
