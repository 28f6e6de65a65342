"""Several processes training one model: torchrun's environment, the process group, and the few
collectives the DeiT recipe needs.

``torchrun --nproc_per_node N [--nnodes M ...] -m maitsearch train --recipe deit ...`` starts
N processes per node and tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. Each
process takes the GPU of its local rank (NCCL), or the CPU (gloo); DistributedDataParallel
averages the gradients, so every process holds the same weights after every update. Rank 0
alone writes files and the console. Without torchrun nothing here starts a process group, and
a training is one process as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """Where this process stands among those training together."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None  # nccl or gloo once a process group is up; None for one process

    @property
    def main(self) -> bool:
        """The process that writes checkpoints, metrics and the console."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> Processes:
    """What torchrun (or any launcher setting its variables) said, without starting anything."""
    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        try:
            return int(value) if value else default
        except ValueError:
            raise ConfigError(f"{name} {value!r}: expected a whole number (as torchrun sets it)") from None

    return Processes(rank=number("RANK", 0), local_rank=number("LOCAL_RANK", 0), world_size=number("WORLD_SIZE", 1))


def process_device(setting: str, processes: Processes) -> torch.device:
    """The device this process trains on. Several processes: each the GPU of its local rank
    (``auto`` and ``cuda``), or the CPU; one process: the setting as the light loop reads it."""
    from .loop import resolve_device

    if not processes.distributed:
        return resolve_device(setting)
    if setting.startswith("cuda:"):
        raise ConfigError(f"--device {setting}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                          "use --device auto or cuda (CUDA_VISIBLE_DEVICES picks the GPUs)")
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    resolve_device("cuda")  # one line when there is no GPU
    count = torch.cuda.device_count()
    if processes.local_rank >= count:
        raise ConfigError(f"LOCAL_RANK {processes.local_rank}: this node has {count} GPU(s); start at most "
                          f"{count} processes per node (torchrun --nproc_per_node {count})")
    return torch.device("cuda", processes.local_rank)


def start(setting: str) -> tuple[Processes, torch.device]:
    """This process's place and device; with several processes, the process group too (NCCL on
    CUDA, gloo on the CPU), set up from torchrun's environment."""
    processes = launched()
    device = process_device(setting, processes)
    if not processes.distributed:
        return processes, device
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, **({"device_id": device} if device.type == "cuda" else {}))
    return Processes(processes.rank, processes.local_rank, processes.world_size, backend), device


def stop(processes: Processes) -> None:
    if processes.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, processes: Processes, device: torch.device) -> torch.nn.Module:
    """The model that trains: DistributedDataParallel over several processes (it broadcasts rank
    0's weights at once, and averages gradients in every backward), else the model itself."""
    if not processes.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sum_over(values: list[float], processes: Processes, device: torch.device) -> list[float]:
    """Each value summed over every process (float64, so counts stay exact)."""
    if not processes.distributed:
        return list(values)
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def agree(value: int, processes: Processes, device: torch.device) -> tuple[int, int]:
    """(least, greatest) of ``value`` over the processes: whether they all see the same thing."""
    if not processes.distributed:
        return value, value
    import torch.distributed as dist

    low = torch.tensor([value], dtype=torch.int64, device=device)
    high = low.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return int(low), int(high)


def gather(value: int, processes: Processes, device: torch.device) -> list[int]:
    """``value`` of every process, by rank."""
    if not processes.distributed:
        return [value]
    import torch.distributed as dist

    mine = torch.tensor([value], dtype=torch.int64, device=device)
    everyone = [torch.zeros_like(mine) for _ in range(processes.world_size)]
    dist.all_gather(everyone, mine)
    return [int(t) for t in everyone]


def shard(length: int, processes: Processes) -> list[int]:
    """This process's share of ``length`` items for evaluation: every world-size-th, so the shares
    cover each item exactly once (no padding, unlike DistributedSampler's)."""
    return list(range(processes.rank, length, processes.world_size))
