"""Reading back a folder ``maitsearch train`` wrote (by default results/train/<name>/): its
settings, its spec and its metrics per epoch, for ``maitsearch results`` and ``export -o``.

Like a run folder, a damaged file is reported in ``Training.problems`` instead of raising.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..errors import SpecError
from ..spec import MaskSpec, load_spec

# what train writes (training/checkpoints.py, model/export.py), named here without importing torch
SETTINGS, SPEC, METRICS, MODEL_FILES = "config.yaml", "spec.yaml", "metrics.jsonl", ("checkpoint.pt", "model.safetensors")


@dataclass
class Training:
    path: Path
    settings: dict = field(default_factory=dict)  # its config.yaml: train -c reruns it
    spec: MaskSpec | None = None
    metrics: list[dict] = field(default_factory=list)  # one row per finished epoch, accuracies as fractions
    problems: list[str] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics)

    def best_epoch(self) -> dict | None:
        scored = [row for row in self.metrics if row.get("val_top1") is not None]
        return max(scored, key=lambda row: row["val_top1"], default=None)


def is_training_folder(path: str | Path) -> bool:
    """A folder train wrote: its settings and a model or metrics, and not a search run's files."""
    path = Path(path)
    return ((path / SETTINGS).is_file() and not (path / "search.yaml").exists()
            and any((path / name).is_file() for name in (*MODEL_FILES, METRICS)))


def read_training(path: str | Path) -> Training:
    path = Path(path)
    training = Training(path)
    try:
        settings = yaml.safe_load((path / SETTINGS).read_text(encoding="utf-8"))
        training.settings = settings if isinstance(settings, dict) else {}
    except (OSError, yaml.YAMLError) as err:
        training.problems.append(f"{path / SETTINGS}: cannot read it ({str(err).splitlines()[0]})")
    if (path / SPEC).is_file():
        try:
            training.spec = load_spec(path / SPEC)
        except SpecError as err:
            training.problems.append(str(err))
    if (path / METRICS).is_file():
        for number, line in enumerate((path / METRICS).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                training.metrics.append(json.loads(line))
            except json.JSONDecodeError:
                training.problems.append(f"{path / METRICS}:{number}: not a JSON line; skipped")
    return training
