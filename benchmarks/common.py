"""Shared benchmark helpers: interleaved timing, medians, ratios and JSON output.

Models are timed round-robin, one step each per round, so slow drifts of the machine (thermal,
other processes) hit every model alike; the median over rounds is reported.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

OUT = Path(__file__).parent / "out"


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(steps: dict[str, Callable[[], None]], *, warmup: int, repeats: int,
                        device: str = "cpu") -> dict[str, float]:
    """Median seconds of each callable, timed round-robin after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def train_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
               autocast_dtype: torch.dtype | None = None) -> Callable[[], None]:
    """One AdamW training step (forward, loss, backward, update) as a callable."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def write_json(name: str, payload: dict, path: str | Path | None = None) -> Path:
    """``benchmarks/out/NAME.json`` (or ``path``: a check's output stays out of the benchmarks page)."""
    path = Path(path) if path else OUT / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
