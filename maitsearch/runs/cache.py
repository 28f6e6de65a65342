"""A cache of trained proxy seeds, shared by every run, calibration and strategy on the machine.

A finished (placement, seed) is stored once under a content key: everything that decides the
numbers ``fit`` returns. Another run that asks for the same key reuses the result instead of
training it again, so the ``none`` and ``sch1`` baselines of a proxy train once per machine,
not once per run. Entries are JSON files written atomically, so two workers racing on one key
leave one whole entry (the same numbers either way). An entry that does not parse is ignored
and retrained. The folder is ``--cache DIR``, else ``$MAITSEARCH_CACHE``, else
``.maitsearch-cache`` beside the results folder.

What the key holds, and why each part:
- the canonical placement, window, semantics and pattern (``MaskSpec.key``): the experiment;
- every ProxyConfig field, seed included: the model, the data and the recipe;
- the data's identity beyond its name, for folders on disk (path and modification times);
- ``TRAINING_VERSION`` and the torch version: code that would change the numbers;
- the torch thread count: float sums are ordered differently with more threads, and results
  are bit-identical only for the same count;
- the processor (CPU model and instruction set, or the GPU's name): the same seed, code and
  torch version gave 95.23% validation top-1 on one machine and 95.28% on another, so a cache
  folder shared by several machines keeps each machine's numbers apart.

Before training a key, a worker claims it (``runs/claims.py``): a second worker that wants the
same key while the first trains it waits for the entry instead of training it again, and a
dead worker's claim is broken once its heartbeat has been silent for the grace period.

On a GPU the key names the GPU model and nothing else about the device: not its index (a
search puts one worker on each GPU of a node, and cuda:0 and cuda:3 of one model compute the
same numbers), nor the CPU thread count (a GPU trial's CPU work is exact element-wise
arithmetic). CPU keys are as they always were.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from .claims import Claims
from ..config import ProxyConfig
from ..data.sources import FOLDER_SETTINGS
from ..spec import MaskSpec
from ..training import TrialResult
from ..training.proxy import TRAINING_VERSION

CACHE_ENV = "MAITSEARCH_CACHE"
CACHE_FOLDER = ".maitsearch-cache"


def cache_folder(results_root: str | Path, requested: str | Path | None = None) -> Path:
    """``requested``, else $MAITSEARCH_CACHE, else ``.maitsearch-cache`` beside the results folder."""
    if requested:
        return Path(requested)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(results_root).resolve().parent / CACHE_FOLDER


def data_identity(name: str) -> str:
    """Embedded and torchvision data are fixed by their name (and the code version); a folder
    on disk is identified by its path and the modification times of its split folders and of its
    settings file."""
    path = Path(name)
    if not path.is_dir():
        return name
    stamps = [f"{split}:{(path / split).stat().st_mtime_ns}" for split in ("train", "val", "test")
              if (path / split).is_dir()]
    if (path / FOLDER_SETTINGS).is_file():  # its settings change the images a proxy sees (flips)
        stamps.append(f"{FOLDER_SETTINGS}:{(path / FOLDER_SETTINGS).stat().st_mtime_ns}")
    return f"{path.resolve()}|{','.join(stamps)}"


# Proxy options added after the cache's first entries, at the value that trains exactly as the
# code did before the option existed: left out of the key there, so a new option does not orphan
# every entry made without it. Any other value is in the key like every other field.
NEUTRAL_OPTIONS = {"pool": "token", "train_copies": 1}


def cache_key(spec: MaskSpec, proxy: ProxyConfig, threads: int) -> dict:
    import torch

    fields = {name: value for name, value in proxy.to_dict().items()
              if not (name in NEUTRAL_OPTIONS and NEUTRAL_OPTIONS[name] == value)}
    machine = machine_identity(proxy.device)
    if machine.startswith("cuda:"):  # see the module docstring: the GPU's model, not its index or the threads
        fields["device"], threads = "cuda", None
    return {"version": TRAINING_VERSION, "torch": torch.__version__, "threads": threads,
            "machine": machine, "placement": spec.key(), "proxy": fields,
            "data": data_identity(proxy.data)}


def machine_identity(device: str = "auto") -> str:
    """The processor a proxy on ``device`` trains on: ``cuda:<the GPU's name>`` (never its
    index), or the CPU's architecture, torch's instruction set for it, and a digest of its
    model and feature flags."""
    name = gpu_name(device)
    return f"cuda:{name}" if name is not None else cpu_identity()


@functools.lru_cache(maxsize=None)
def gpu_name(device: str = "auto") -> str | None:
    """The model of the GPU ``device`` trains on (the first, for a list such as ``cuda:2,3``);
    None when it trains on the CPU."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return None
    index = int(device.split(":")[1].split(",")[0]) if ":" in device else torch.cuda.current_device()
    return torch.cuda.get_device_name(index)


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    import torch

    return f"cpu:{platform.machine()}:{torch.backends.cpu.get_cpu_capability()}:{_cpu_model_digest()}"


def _cpu_model_digest() -> str:
    """vendor, family, model and flags of the first processor in /proc/cpuinfo (Linux), else
    what ``platform`` knows; hashed, since the flags alone run to a thousand characters."""
    try:
        block = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        text = "|".join(fields.get(name, "").strip() for name in ("vendor_id", "cpu family", "model", "flags"))
    except OSError:
        text = platform.processor()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


class CorruptEntry(Exception):
    """An entry that cannot be read back; ``str()`` is one line naming the file."""


@dataclass
class CacheEntry:
    path: Path
    key: dict
    result: TrialResult
    created: float


class TrialCache:
    def __init__(self, folder: str | Path, grace: float | None = None):
        self.folder = Path(folder)
        self.claims = Claims(self.folder, grace)  # claims/<digest>.lease: keys being trained now

    def path(self, key: dict) -> Path:
        name = digest(key)
        return self.folder / name[:2] / f"{name}.json"

    def get(self, key: dict) -> TrialResult | None:
        """The cached result for ``key``, None when there is none; ``CorruptEntry`` when the
        file exists but cannot be read (the caller retrains and overwrites it)."""
        path = self.path(key)
        if not path.exists():
            return None
        return self._read(path, expected=key).result

    def put(self, key: dict, result: TrialResult) -> Path | None:
        """Store a complete result (a pruned or failed one depends on more than its key)."""
        if result.status != "complete":
            return None
        entry = {"key": key, "created": time.time(), "result": result.to_dict()}
        return atomic.write_text(self.path(key), json.dumps(entry))

    def entries(self) -> tuple[list[CacheEntry], list[str]]:
        """Every readable entry, newest first, and one line per unreadable file."""
        found, problems = [], []
        for path in sorted(self.folder.glob("*/*.json")) if self.folder.is_dir() else []:
            try:
                found.append(self._read(path))
            except CorruptEntry as err:
                problems.append(str(err))
        return sorted(found, key=lambda e: e.created, reverse=True), problems

    def clear(self) -> int:
        """Remove every entry; returns how many files went."""
        removed = 0
        for path in self.folder.glob("*/*.json") if self.folder.is_dir() else []:
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    @staticmethod
    def _read(path: Path, expected: dict | None = None) -> CacheEntry:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = CacheEntry(path, data["key"], TrialResult(**data["result"]), float(data["created"]))
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise CorruptEntry(f"{path}: unreadable cache entry ({type(err).__name__}); it will be retrained") from None
        if expected is not None and json.loads(json.dumps(expected, default=str)) != entry.key:
            raise CorruptEntry(f"{path}: holds another key (a hash collision or a hand-edited file); "
                               "it will be retrained")
        return entry
