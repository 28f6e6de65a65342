"""The run folder (DESIGN.md section 7): atomic writes, safe names, and reading runs back.

    results/<run>/
      search.yaml        the resolved search config (re-runnable as is)
      trials/<n>.yaml    mask spec + metrics of trial n (itself a valid mask spec)
      trials.csv         one row per trial
      best.yaml          the chosen placement
      report.md, *.png   written by the report

Reading needs no search code: a trial file is a MaskSpec whose ``meta`` holds the metrics.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import atomic
from .spec import MaskSpec, SpecError, load_spec
from .stats import mean_std

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TRIALS_CSV_COLUMNS = ["number", "step", "placement", "masked", "state", "top1", "top1_std", "test_top1",
                      "test_top1_std", "loss", "als_mean", "als_head0_mean", "seeds", "seconds", "duplicate_of",
                      "reason"]


class RunNameError(ValueError):
    pass


def validate_run_name(name: str) -> str:
    """Run names are one path component: letters, digits, '.', '_' and '-', at most 100
    characters, not starting with a dot. Nothing else can escape the results folder."""
    if not isinstance(name, str) or not RUN_NAME.match(name) or name in (".", ".."):
        shown = repr(name) if len(str(name)) <= 60 else repr(str(name)[:57]) + "..."
        raise RunNameError(f"--name {shown}: a run name is 1-100 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return name


def run_folder(root: str | Path, name: str) -> Path:
    root = Path(root).resolve()
    folder = (root / validate_run_name(name)).resolve()
    if folder.parent != root:  # belt and braces: the regex already forbids separators
        raise RunNameError(f"--name {name!r}: escapes {root}")
    return folder


@dataclass
class TrialRecord:
    """One trained placement, averaged over its seeds."""

    number: int
    step: str
    spec: MaskSpec
    state: str = "complete"  # complete | pruned | nan_loss | oom | failed
    seeds: list[int] = field(default_factory=list)
    val_top1: list[float] = field(default_factory=list)  # per seed
    test_top1: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    als: list[list[float]] | None = None  # mean over seeds, (L, H)
    seconds: float = 0.0
    epochs: int = 0
    reason: str = ""
    duplicate_of: int | None = None
    extra: dict = field(default_factory=dict)  # strategy-specific provenance (optuna params, budget...)

    @property
    def label(self) -> str:
        """The step, with the preset's name where the step does not say it (``baseline sch1``)."""
        preset = self.spec.meta.get("preset")
        return f"{self.step} {preset}" if preset and preset not in self.step else self.step

    @property
    def top1(self) -> float | None:
        return mean_std(self.val_top1)[0] if self.val_top1 else None

    @property
    def top1_std(self) -> float | None:
        return mean_std(self.val_top1)[1] if self.val_top1 else None

    @property
    def test(self) -> float | None:
        return mean_std(self.test_top1)[0] if self.test_top1 else None

    def to_spec(self, run: str, strategy: str, dataset: str) -> MaskSpec:
        meta = {"strategy": strategy, "run": run, "trial": self.number, "step": self.step, "dataset": dataset,
                "state": self.state, "seeds": list(self.seeds), "top1": _round(self.top1),
                "top1_std": _round(self.top1_std), "top1_seeds": [_round(v) for v in self.val_top1],
                "test_top1": _round(self.test), "test_top1_seeds": [_round(v) for v in self.test_top1],
                "loss": _round(mean_std(self.loss)[0]) if self.loss else None, "als": self.als,
                "seconds": round(self.seconds, 1), "epochs": self.epochs}
        if self.reason:
            meta["reason"] = self.reason
        if self.duplicate_of is not None:
            meta["duplicate_of"] = self.duplicate_of
        if self.extra:
            meta["extra"] = self.extra
        return self.spec.with_meta(**meta)

    @classmethod
    def from_spec(cls, spec: MaskSpec) -> "TrialRecord":
        meta = dict(spec.meta)
        bare = MaskSpec(layers=spec.layers, heads=spec.heads, masks=spec.masks, window=spec.window,
                        semantics=spec.semantics, soft=spec.soft, pattern=spec.pattern,
                        pattern_seed=spec.pattern_seed, meta={k: v for k, v in meta.items() if k == "preset"})
        return cls(number=int(meta.get("trial", -1)), step=str(meta.get("step", "")), spec=bare,
                   state=str(meta.get("state", "complete")), seeds=list(meta.get("seeds") or []),
                   val_top1=list(meta.get("top1_seeds") or []), test_top1=list(meta.get("test_top1_seeds") or []),
                   loss=[meta["loss"]] if meta.get("loss") is not None else [], als=meta.get("als"),
                   seconds=float(meta.get("seconds") or 0.0), epochs=int(meta.get("epochs") or 0),
                   reason=str(meta.get("reason", "")), duplicate_of=meta.get("duplicate_of"),
                   extra=dict(meta.get("extra") or {}))

    def summary(self) -> dict:
        """The trial as one row of numbers (means over seeds), for trials.csv and the tables."""
        als = self.als or []
        flat = [a for row in als for a in row]
        return {"number": self.number, "step": self.step, "placement": self.spec.compact(),
                "masked": self.spec.num_masked, "state": self.state, "top1": self.top1,
                "top1_std": self.top1_std, "test_top1": self.test,
                "test_top1_std": mean_std(self.test_top1)[1] if self.test_top1 else None,
                "loss": mean_std(self.loss)[0] if self.loss else None,
                "als_mean": sum(flat) / len(flat) if flat else None,
                "als_head0_mean": sum(row[0] for row in als) / len(als) if als else None,
                "seeds": len(self.seeds), "seconds": self.seconds, "duplicate_of": self.duplicate_of,
                "reason": self.reason}

    def csv_row(self) -> dict:
        row = self.summary()
        rounded = {key: _round(row[key]) for key in ROUNDED_COLUMNS}
        return {**row, **rounded, "seconds": round(self.seconds, 1)}


ROUNDED_COLUMNS = ("top1", "top1_std", "test_top1", "test_top1_std", "loss", "als_mean", "als_head0_mean")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


class RunStore:
    """Reads and writes one run folder. Every write is atomic, so a kill at any moment leaves
    files that parse; several workers may share the folder (each writes its own trial files)."""

    def __init__(self, root: str | Path, name: str):
        self.name = name
        self.path = run_folder(root, name)
        self.trials_dir = self.path / "trials"

    def exists(self) -> bool:
        return (self.path / "search.yaml").exists()

    # config
    def write_config(self, data: dict) -> None:
        atomic.write_text(self.path / "search.yaml", yaml.safe_dump(data, sort_keys=False))

    def read_config(self) -> dict:
        return yaml.safe_load((self.path / "search.yaml").read_text(encoding="utf-8")) or {}

    # trials
    def trial_path(self, number: int) -> Path:
        return self.trials_dir / f"{number}.yaml"

    def write_trial(self, record: TrialRecord, strategy: str, dataset: str) -> Path:
        return record.to_spec(self.name, strategy, dataset).save(self.trial_path(record.number))

    def load_trials(self) -> tuple[list[TrialRecord], list[str]]:
        """All readable trial records in number order, and one line per unreadable file."""
        records, problems = [], []
        if not self.trials_dir.is_dir():
            return records, problems
        for path in sorted(self.trials_dir.glob("*.yaml"), key=lambda p: (len(p.stem), p.stem)):
            try:
                records.append(TrialRecord.from_spec(load_spec(path)))
            except (SpecError, ValueError, TypeError) as err:
                problems.append(str(err))
        records.sort(key=lambda r: r.number)
        return records, problems

    def write_trials_csv(self, records: list[TrialRecord]) -> Path:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TRIALS_CSV_COLUMNS)
        writer.writeheader()
        for record in sorted(records, key=lambda r: r.number):
            writer.writerow(record.csv_row())
        return atomic.write_text(self.path / "trials.csv", buffer.getvalue())

    def write_best(self, spec: MaskSpec) -> Path:
        return spec.save(self.path / "best.yaml")

    def write_text(self, name: str, text: str) -> Path:
        return atomic.write_text(self.path / name, text)

    def write_yaml(self, name: str, data: Any) -> Path:
        return atomic.write_text(self.path / name, yaml.safe_dump(data, sort_keys=False))
