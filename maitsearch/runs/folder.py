"""The run folder (docs/DESIGN.md, section 9): atomic writes and safe names.

    results/<run>/
      search.yaml        the resolved search config (re-runnable as is)
      trials/<n>.yaml    mask spec + metrics of trial n (itself a valid mask spec)
      trials.csv         one row per trial
      best.yaml          the chosen placement
      report.md, *.png   written by the report

A trial file is a MaskSpec whose ``meta`` holds the metrics (``record.TrialRecord``).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import yaml

from .. import atomic
from ..errors import RunNameError, SpecError
from ..spec import MaskSpec, load_spec, uniform_als
from .record import TrialRecord

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TRIALS_CSV_COLUMNS = ["number", "step", "placement", "masked", "soft", "state", "top1", "top1_std", "test_top1",
                      "test_top1_std", "loss", "norm_als_mean", "norm_als_head0", "seeds", "cached", "seconds",
                      "duplicate_of", "reason"]


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
    if folder.exists() and not folder.is_dir():
        raise RunNameError(f"--name {name}: {folder} is a file, not a run folder; pick another name")
    return folder


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

    def load_config(self):
        """The run's search.yaml as a ``SearchConfig``; a torn or hand-broken one is a one-line
        ``ConfigError`` naming the file and line."""
        from ..config import load_config

        return load_config(self.path / "search.yaml")

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
        grid = self._grid()
        for record in records:  # trials written before ALS was normalized did not store u
            if record.als and record.als_uniform is None and grid is not None:
                record.als_uniform = uniform_als(grid, record.spec.window)
        return records, problems

    def _grid(self) -> tuple[int, int] | None:
        """The proxy's patch grid, from search.yaml."""
        try:
            proxy = self.read_config().get("proxy") or {}
            side = int(proxy["image_size"]) // int(proxy["patch_size"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
            return None
        return side, side

    def write_trials_csv(self, records: list[TrialRecord]) -> Path:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TRIALS_CSV_COLUMNS)
        writer.writeheader()
        for record in sorted(records, key=lambda r: r.number):
            writer.writerow(record.csv_row())
        return atomic.write_text(self.path / "trials.csv", buffer.getvalue())

    def write_best(self, spec: MaskSpec) -> Path:
        return spec.save(self.path / "best.yaml")

    def write_answer(self, spec: MaskSpec | None) -> None:
        """answer.yaml: the strategy's own final step, when it is not best.yaml (else removed, so
        a stale one never outlives a resumed run that changed its mind)."""
        if spec is None:
            (self.path / "answer.yaml").unlink(missing_ok=True)
        else:
            spec.save(self.path / "answer.yaml")

    def write_text(self, name: str, text: str) -> Path:
        return atomic.write_text(self.path / name, text)

    def write_yaml(self, name: str, data: Any) -> Path:
        return atomic.write_text(self.path / name, yaml.safe_dump(data, sort_keys=False))
