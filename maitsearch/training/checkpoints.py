"""A full training's folder: ``spec.yaml``, ``config.yaml``, ``checkpoint.pt`` and ``metrics.jsonl``,
what both recipes write, and the checks a ``--resume`` passes before anything trains.

Checkpoints are written atomically after every epoch and load with ``weights_only=True``:
tensors and plain containers only, so a checkpoint from elsewhere cannot run code here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
import yaml

from .. import atomic
from ..errors import ResumeError
from ..spec import MaskSpec, parse_spec

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def plain(config) -> dict:
    """A config as JSON would give it back (tuples as lists), the form checkpoints hold."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def start_folder(out: Path, spec: MaskSpec, config) -> None:
    """A new training's folder with its spec and the config that reruns it (``train -c``)."""
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / "spec.yaml")
    atomic.write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def find_checkpoint(out: Path, resume: bool) -> dict | None:
    """The checkpoint to continue from: None for a fresh start, which a folder holding one refuses
    without ``--resume`` (it would be overwritten)."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    if not resume:
        raise ResumeError(f"--out {out} already holds a checkpoint: add --resume to continue it, or pick another --out")
    return load_checkpoint(path)


def check_resume(state: dict, path: Path, config, spec: MaskSpec, defaults) -> None:
    """A resume continues what the checkpoint started, or is refused with what differs."""
    changed = resume_differences(state, config, spec, defaults)
    if changed:
        raise ResumeError(f"--resume: {path} was written with other settings ({'; '.join(changed)}); "
                          "use the original flags or another --out")


def resume_differences(state: dict, config, spec: MaskSpec, defaults=None) -> list[str]:
    """What differs between a checkpoint's settings and these: ``epochs: 10 -> 20``. A setting
    the checkpoint predates counts as its default (``defaults``, a config at its defaults)."""
    saved, now = state["config"], plain(config)
    before = plain(defaults) if defaults is not None else {}
    changed = [f"{key}: {saved.get(key, before.get(key))!r} -> {now.get(key)!r}" for key in now
               if saved.get(key, before.get(key)) != now.get(key)]
    changed += [f"{key}: {saved[key]!r} -> (no such setting)" for key in saved if key not in now]
    if state["spec"] != spec.to_yaml():
        saved_spec = parse_spec(state["spec"], source="checkpoint")
        changed.append(f"mask spec: {saved_spec.compact()} -> {spec.compact()}")
    return changed


def save_checkpoint(path: Path, state: dict) -> None:
    atomic.save_torch(path, state)


def load_checkpoint(path: Path, flag: str | None = "--resume") -> dict:
    """Tensors and plain containers only: anything else (a pickled object) is refused, as is a
    file torch cannot read; ``flag`` is the option the one-line error names, if any."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError (and friends) for forbidden globals
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        named = f"{flag} {path}" if flag else str(path)
        raise ResumeError(f"{named}: refused: not a checkpoint of plain tensors (torch.load: {first})") from None


def weights_digest(state: dict) -> int:
    """A 56-bit digest of every tensor of a state dict, bit for bit: processes of one training
    compare theirs after each epoch, and a checkpoint keeps them."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return int.from_bytes(digest.digest()[:7], "big")


def read_metrics(out: Path, epochs: int) -> list[dict]:
    path = out / METRICS
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:epochs]


def write_metrics(out: Path, history: list[dict]) -> None:
    atomic.write_text(out / METRICS, "".join(json.dumps(row) + "\n" for row in history))


def save_weights(model, out: Path, data) -> Path:
    """The trained weights without optimizer or RNG state: ``model.safetensors`` and timm's
    ``config.json`` (the ``save_for_hf`` layout; a ``mait_*`` config holds the spec inline, any
    other model's masks come back from ``spec.yaml`` through ``model.export.load_pretrained``),
    with the normalization of ``data`` (its ``mean`` and ``std``), the one the weights learned."""
    from ..model.export import save_pretrained

    return save_pretrained(model, out, mean=data.mean, std=data.std)
