"""Reading runs back: ``load_run`` for one run, ``list_runs`` for a results folder.

Reading needs no search code and survives damage: a folder that is not a run, a truncated
YAML or a missing trials.csv is reported in ``Run.status`` / ``Run.problems`` instead of raising.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..errors import SpecError, StorageError
from ..spec import MaskSpec, load_spec
from .folder import RunStore, validate_run_name
from .record import FAILED_STATES, TrialRecord
from .trainings import Training, is_training_folder, read_training

# Column dtypes of ``Run.trials``: placements are text (a placement like 0011 is not a number).
TRIAL_DTYPES = {"number": "int64", "step": "string", "placement": "string", "masked": "int64", "soft": "int64",
                "bars": "string", "state": "string", "top1": "float64", "top1_std": "float64",
                "test_top1": "float64", "test_top1_std": "float64", "loss": "float64", "norm_als_mean": "float64",
                "norm_als_head0": "float64", "seeds": "int64", "cached": "int64", "seconds": "float64",
                "duplicate_of": "Int64", "reason": "string"}
RUN_DTYPES = {"name": "string", "strategy": "string", "dataset": "string", "shape": "string", "trials": "int64",
              "complete": "int64", "failed": "int64", "pruned": "int64", "best_top1": "float64",
              "best_top1_std": "float64", "baseline_top1": "float64", "baseline_top1_std": "float64",
              "gain": "float64", "seconds": "float64", "all_cached": "bool", "status": "string"}
BARS = " ▁▂▃▄▅▆▇█"
TRAININGS = "train"  # results/train/ holds what `maitsearch train` writes by default: trained models, not runs


def count_bars(spec: MaskSpec) -> str:
    """How masked each layer is, as a sparkline: one character per layer, a full block when
    every head is hard-masked. A soft head counts 1 - alpha, so a layer of soft heads at 0.5
    shows half a block."""
    return "".join(BARS[round(sum(1.0 - a for a in row) / spec.heads * (len(BARS) - 1))] for row in spec.alphas())


@dataclass
class Run:
    """One run folder, read. ``status`` is ``ok`` or says what is wrong."""

    path: Path
    config: dict = field(default_factory=dict)
    records: list[TrialRecord] = field(default_factory=list)
    best: MaskSpec | None = None
    answer: MaskSpec | None = None  # answer.yaml: the strategy's own answer, where it is not best.yaml
    calibration: dict | None = None
    supernet: dict | None = None  # supernet.yaml: a supernet run's costs and ranking fidelity
    problems: list[str] = field(default_factory=list)
    status: str = "ok"
    transfer: dict | None = None  # a transfer study's transfer.yaml: the folder holds two runs, not trials
    parts: list[Run] = field(default_factory=list)  # a transfer study's proxy and target runs
    training: Training | None = None  # a folder maitsearch train wrote: listed beside the runs, not one

    def __repr__(self) -> str:
        """The gist, as a notebook shows it; the config and every record are attributes."""
        row = self.summary()
        best = f", best {self.best.label()}" if self.best is not None else ""
        return (f"<Run {self.name}: {row['strategy']}, {row['shape']} on {row['dataset']}, {row['trials']} trials"
                f"{best}; {self.status}>")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def strategy(self) -> str:
        if self.transfer is not None:
            return "transfer"
        if self.training is not None:
            return "train"
        return str(self.config.get("strategy", "?"))

    @property
    def dataset(self) -> str:
        if self.transfer is not None:  # proxy -> target
            return " -> ".join(str((self.transfer.get(side) or {}).get("data", "?")) for side in ("proxy", "target"))
        if self.training is not None:
            return str(self.training.settings.get("data", "?"))
        return str((self.config.get("proxy") or {}).get("data", "?"))

    @property
    def trials(self) -> pd.DataFrame:
        rows = []
        for record in self.records:
            row = record.summary()
            rows.append({**row, "bars": count_bars(record.spec), "reason": record.reason or None})
        return pd.DataFrame(rows, columns=list(TRIAL_DTYPES)).astype(TRIAL_DTYPES)

    def record(self, number: int) -> TrialRecord:
        for record in self.records:
            if record.number == number:
                return record
        raise KeyError(f"run {self.name} has no trial {number}")

    def best_record(self) -> TrialRecord | None:
        """The record behind best.yaml."""
        return self._record_of(self.best)

    def answer_record(self) -> TrialRecord | None:
        """The record behind the strategy's own answer: answer.yaml, or best.yaml when they agree."""
        return self._record_of(self.answer) if self.answer is not None else self.best_record()

    def _record_of(self, spec: MaskSpec | None) -> TrialRecord | None:
        number = spec.meta.get("trial") if spec is not None else None
        return next((record for record in self.records if record.number == number), None)

    def baseline_record(self) -> TrialRecord | None:
        from .report import baseline_of

        return baseline_of(self.records)

    def comparisons(self) -> list[str]:
        """best.yaml, and answer.yaml where there is one, against the unmasked baseline and
        Sch.1, judged with the calibration of this proxy when the results folder holds one."""
        from ..config import config_from_dict
        from ..errors import ConfigError
        from .report import comparisons, find_calibration

        try:
            calibration = find_calibration(self.path.parent, config_from_dict(self.config))
        except ConfigError:  # a config this version cannot read: no calibration to look up
            calibration = None
        answer = self.answer_record() if self.answer is not None else None
        return comparisons(self.records, self.best_record(), answer, calibration,
                           strategy=self.config.get("strategy"))

    def summary(self) -> dict:
        """The run's row in the run list. A transfer study counts the trials and time of its two
        runs; its accuracies are on two tasks, so it shows none (its status gives the tau). A
        training has no trials: its best is its best epoch, and its time is not recorded."""
        records = self.records + [record for part in self.parts for record in part.records]
        states = [r.state for r in records]
        best, baseline = self.best_record(), self.baseline_record()
        seconds = sum(r.seconds for r in records)
        config = self.config if self.transfer is None else (self.transfer.get("proxy") or {})
        row = {"name": self.name, "strategy": self.strategy, "dataset": self.dataset,
               "shape": f"{config.get('layers', '?')}x{config.get('heads', '?')}",
               "trials": len(records), "complete": states.count("complete"),
               "failed": sum(states.count(s) for s in FAILED_STATES), "pruned": states.count("pruned"),
               "best_top1": best.top1 if best else None, "best_top1_std": _spread(best),
               "baseline_top1": baseline.top1 if baseline else None, "baseline_top1_std": _spread(baseline),
               "gain": (best.top1 - baseline.top1) if best and baseline and best.top1 is not None else None,
               "seconds": seconds, "all_cached": self.all_cached, "status": self.status}
        if self.training is not None:
            spec, epoch = self.training.spec, self.training.best_epoch()
            row.update(shape=f"{spec.layers}x{spec.heads}" if spec is not None else row["shape"],
                       best_top1=epoch["val_top1"] if epoch else None, seconds=math.nan)
        return row

    @property
    def all_cached(self) -> bool:
        """Every result came from the trial cache: each trial's seeds, or (a repeated
        placement) the trial it repeats. The run trained nothing."""
        if self.parts:
            return all(part.all_cached for part in self.parts)
        return bool(self.records) and all(r.all_cached or r.duplicate_of is not None for r in self.records)

    # ---- figures ---------------------------------------------------------------------------
    def plot_als(self, path: str | Path | None = None, trial: int | None = None) -> Path:
        """Normalized ALS per (layer, head) of a trial (default: the strategy's answer, else the
        best), like the paper's Figure 3."""
        from . import plots

        if trial is not None:
            record = self.record(trial)
        else:
            record = self.answer_record() or next((r for r in reversed(self.records) if r.als), None)
        als = record.normalized_als() if record is not None else None
        if als is None:
            raise ValueError(f"run {self.name}: no {'trial' if trial is None else f'ALS for trial {trial}'} to plot")
        return plots.als_heatmap(als, record.spec, path or self.path / _figure_name("als", trial),
                                 plots.als_title(record.number, record.label, self.name))

    def plot_alphas(self, path: str | Path | None = None) -> Path:
        """Soft-mask alphas over the epochs of the run's soft trial."""
        from . import plots

        record = next((r for r in self.records if r.alpha_history), None)
        if record is None:
            raise ValueError(f"run {self.name}: no trial learned soft-mask alphas")
        return plots.alpha_trajectories(record.alpha_history, path or self.path / "alphas.png",
                                        f"alphas of trial {record.number} ({record.label}), mean over seeds, "
                                        f"{self.name}")

    def plot_placement(self, path: str | Path | None = None) -> Path:
        from . import plots

        if self.best is None:
            raise ValueError(f"run {self.name}: no best.yaml to plot")
        return plots.placement_heatmap(self.best, path or self.path / "placement.png",
                                       f"chosen placement {self.best.label()} of {self.name}")

    def plot_fidelity(self, path: str | Path | None = None) -> Path:
        from .report import fidelity_figure, run_fidelity

        drawn = fidelity_figure(run_fidelity(self.supernet, self.calibration), path or self.path / "fidelity.png",
                                self.name)
        if drawn is None:
            raise ValueError(f"run {self.name}: no supernet ranking fidelity with two placements measured both ways")
        return drawn

    def plot_accuracy(self, path: str | Path | None = None) -> Path:
        from . import plots

        done = [r for r in self.records if r.top1 is not None]
        if not done:
            raise ValueError(f"run {self.name}: no trial with an accuracy to plot")
        baseline = self.baseline_record()
        best = self.best_record()
        return plots.accuracy_over_trials(
            [r.number for r in done], [r.top1 for r in done], [r.top1_std or 0.0 for r in done],
            _point_labels(done),
            baseline.top1 if baseline else None, path or self.path / "accuracy.png",
            f"validation top-1 per trial, {self.name}", states=[r.state for r in done],
            chosen=best.number if best is not None else None)

    def plot_pareto(self, path: str | Path | None = None) -> Path:
        from ..model.locality import attention_cost
        from . import plots

        proxy = self.proxy_config()
        done = [r for r in self.records if r.state == "complete" and r.top1 is not None]
        if len(done) < 2:
            raise ValueError(f"run {self.name}: a Pareto front needs at least two complete trials")
        costs = [attention_cost(r.spec, self.cost_grid(proxy), 1) for r in done]
        accuracies = [r.top1 for r in done]
        front = [not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in zip(costs, accuracies))
                 for c, a in zip(costs, accuracies)]
        return plots.pareto_front(costs, accuracies, front, path or self.path / "pareto.png",
                                  f"accuracy against attention cost, {self.name}")

    def plot_similarity(self, path: str | Path | None = None, trial: int | None = None) -> Path:
        """Cross-layer attention similarity (paper appendix A.3) of a trial (default: the best)
        and the baseline models, from checkpoints kept with ``--keep-checkpoints``."""
        from . import plots

        compared = ("best", self.best_record()) if trial is None else (self.record(trial).label, self.record(trial))
        matrices = {}
        for label, record in (("unmasked baseline", self.baseline_record()), compared):
            if record is None:
                continue
            checkpoint = self.path / "checkpoints" / f"{record.duplicate_of if record.duplicate_of is not None else record.number}.pt"
            if not checkpoint.exists():
                raise ValueError(f"run {self.name}: no checkpoint for trial {record.number} "
                                 "(re-run with --keep-checkpoints)")
            matrices[f"{label} (trial {record.number})"] = self._similarity(checkpoint, record.spec)
        if not matrices:
            raise ValueError(f"run {self.name}: no baseline or best trial to compare")
        return plots.similarity_heatmaps(matrices, path or self.path / _figure_name("similarity", trial),
                                         f"cross-layer attention similarity, {self.name}")

    def cost_grid(self, proxy) -> tuple[int, int]:
        """The grid the run's attention_cost objective used (``optuna.cost_grid``, else the proxy's)."""
        from ..config import OptunaSettings

        return OptunaSettings(cost_grid=(self.config.get("optuna") or {}).get("cost_grid")).attention_cost_grid(
            proxy.grid)

    def proxy_config(self):
        """The run's ProxyConfig (fields this version does not know are left out)."""
        from ..config import ProxyConfig

        return ProxyConfig(**{k: v for k, v in (self.config.get("proxy") or {}).items()
                              if k in ProxyConfig.__dataclass_fields__})

    def _similarity(self, checkpoint: Path, spec: MaskSpec, images: int = 256):
        """Cross-layer similarity of a kept checkpoint's proxy, on validation images."""
        import torch

        from ..data import load_data
        from ..model import cross_layer_similarity
        from ..training.proxy import load_trained_proxy

        proxy = self.proxy_config()
        data = load_data(proxy.data, image_size=proxy.image_size, data_dir=proxy.data_dir,
                         train_copies=proxy.train_copies)
        model = load_trained_proxy(checkpoint, spec, proxy, data)
        batch = torch.cat([x for x, _ in data.batches("val", images)])[:images]
        return cross_layer_similarity(model, batch)

    def plot_all(self, trial: int | None = None) -> dict[str, Path | str]:
        """Every figure that the run's data allows; the value is the path, or why not. With a
        trial, its own figures (ALS, similarity to the baseline) beside the run's."""
        from .report import run_fidelity

        out: dict[str, Path | str] = {}
        if trial is not None:
            self.record(trial)  # an unknown trial is the caller's error, not a skipped figure
            makers = {_figure_name("als", trial)[:-4]: lambda: self.plot_als(trial=trial),
                      _figure_name("similarity", trial)[:-4]: lambda: self.plot_similarity(trial=trial)}
        else:
            makers = {"als": self.plot_als, "placement": self.plot_placement, "accuracy": self.plot_accuracy}
            if any(r.alpha_history for r in self.records):
                makers["alphas"] = self.plot_alphas
            if len((self.config.get("optuna") or {}).get("objectives", [])) > 1:
                makers["pareto"] = self.plot_pareto
            if run_fidelity(self.supernet, self.calibration):
                makers["fidelity"] = self.plot_fidelity
            makers["similarity"] = self.plot_similarity
        for name, make in makers.items():
            try:
                out[name] = make()
            except (ValueError, FileNotFoundError) as err:
                out[name] = str(err)
        return out


def _spread(record: TrialRecord | None) -> float | None:
    """The seed std, where there is one: a single seed's 0.0 would read as no noise at all."""
    return record.top1_std if record is not None and len(record.val_top1) > 1 else None


def _point_labels(records: list[TrialRecord]) -> list[str]:
    """A strategy's step names the point, numbered in trial order where a step repeats (a
    supernet's candidates, retrained in the order it ranked them); a sampled placement is named
    by its compact form only while that is short enough not to run into its neighbours' (the
    table has them all)."""
    steps = Counter(record.label for record in records if not _sampled(record))
    seen: Counter = Counter()
    labels = []
    for record in records:
        if _sampled(record):
            compact = record.spec.compact()
            labels.append(compact if len(compact) <= 12 else "")
        elif steps[record.label] > 1:
            seen[record.label] += 1
            labels.append(f"{record.label} {seen[record.label]}")
        else:
            labels.append(record.label)
    return labels


def _sampled(record: TrialRecord) -> bool:
    return record.step == "optuna" and "preset" not in record.spec.meta


def _figure_name(kind: str, trial: int | None) -> str:
    return f"{kind}.png" if trial is None else f"{kind}-trial{trial}.png"


def load_run(path: str | Path) -> Run:
    """Read a run folder (``results/<run>``). Never raises for damage: see ``Run.status``."""
    path = Path(path)
    run = Run(path)
    if not path.is_dir():
        run.status = "missing: no such folder"
        return run
    config_path = path / "search.yaml"
    if not config_path.exists() and (path / "transfer.yaml").exists():
        return _transfer_folder(run)
    if not config_path.exists() and is_training_folder(path):
        run.training = read_training(path)
        problems = len(run.training.problems)
        run.status = (f"damaged: a training with {problems} unreadable part(s)" if problems
                      else "ok: a training, not a search run")
        return run
    if not config_path.exists():
        run.status = "not a run: no search.yaml"
        return run
    try:
        run.config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        if not isinstance(run.config, dict):
            raise ValueError("not a mapping")
    except (yaml.YAMLError, ValueError, OSError) as err:
        run.problems.append(f"{config_path}: unreadable ({str(err).splitlines()[0]})")
        run.config = {}
    store = RunStore(path.parent, path.name) if _valid_name(path.name) else None
    if store is not None:
        run.records, problems = store.load_trials()
        run.problems += problems
    if (path / "best.yaml").exists():
        try:
            run.best = load_spec(path / "best.yaml")
        except SpecError as err:
            run.problems.append(str(err))
    if (path / "answer.yaml").exists():
        try:
            run.answer = load_spec(path / "answer.yaml")
        except SpecError as err:
            run.problems.append(str(err))
    for part in ("calibration", "supernet"):
        file = path / f"{part}.yaml"
        if file.exists():
            try:
                setattr(run, part, yaml.safe_load(file.read_text(encoding="utf-8")))
            except yaml.YAMLError as err:
                run.problems.append(f"{file}: unreadable ({str(err).splitlines()[0]})")
    missing_csv = run.records and not (path / "trials.csv").exists()
    if run.problems:
        run.status = f"damaged: {len(run.problems)} unreadable file(s)"
    elif missing_csv:
        run.status = "incomplete: no trials.csv"
    elif not run.records:
        run.status = "empty: no finished trials"
    return run


def _transfer_folder(run: Run) -> Run:
    """A transfer study: its runs are its proxy/ and target/ folders; its row says how they agree."""
    from .transfer_report import load_transfer

    run.transfer = load_transfer(run.path)
    if run.transfer is None:
        run.status = f"damaged: {run.path / 'transfer.yaml'} unreadable"
        return run
    run.parts = [load_run(run.path / side) for side in ("proxy", "target") if (run.path / side).is_dir()]
    tau = run.transfer.get("kendall_tau")
    run.status = (f"ok: transfer study, tau {'-' if tau is None else f'{tau:+.2f}'}; its runs: "
                  f"--results {run.path}")
    return run


def _valid_name(name: str) -> bool:
    try:
        validate_run_name(name)
        return True
    except ValueError:
        return False


def list_runs(root: str | Path = "results") -> pd.DataFrame:
    """One row per folder under ``root``, damaged ones included, with their status, then the
    trainings folder's trainings as ``train/<name>`` (``maitsearch results train/<name>``)."""
    root = Path(root)
    rows = [load_run(folder).summary() for folder in _subfolders(root) if not _holds_trainings(folder)]
    if _holds_trainings(root / TRAININGS):
        rows += [{**load_run(folder).summary(), "name": f"{TRAININGS}/{folder.name}"}
                 for folder in _subfolders(root / TRAININGS) if is_training_folder(folder)]
    return pd.DataFrame(rows, columns=list(RUN_DTYPES)).astype(RUN_DTYPES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir()) if folder.is_dir() else []


def _holds_trainings(folder: Path) -> bool:
    return folder.name == TRAININGS and not (folder / "search.yaml").exists()  # a run named train is listed


def run_from_storage(url: str, name: str) -> Run:
    """A run read from its Optuna study alone (no shared run folder): every trial's record is in
    the study's user attributes."""
    import optuna

    from ..spec import parse_spec
    from .study_storage import RECORD_ATTR, redact, study_name

    storage = _open_existing(url)
    try:
        study = optuna.load_study(study_name=study_name(name), storage=storage)
    except KeyError:  # Optuna's word for a study that is not there
        held = _runs_held(storage)
        raise StorageError(f"--storage {redact(url)}: no run {name!r} there; it holds "
                           f"{', '.join(held) if held else 'no maitsearch runs'}") from None
    run = Run(Path(name), config=dict(study.user_attrs.get("maitsearch:config") or {}))
    for trial in study.trials:
        text = trial.user_attrs.get(RECORD_ATTR)
        if text:
            run.records.append(TrialRecord.from_spec(parse_spec(text, source=f"trial {trial.number}")))
    run.records.sort(key=lambda r: r.number)
    best = max((r for r in run.records if r.state == "complete" and r.top1 is not None), key=lambda r: r.top1,
               default=None)
    if best is not None:
        run.best = best.spec.with_meta(trial=best.number)
    run.status = "ok (from storage)" if run.records else "empty: no finished trials in the study"
    return run


def runs_in_storage(url: str) -> list[str]:
    """The names of the maitsearch runs an Optuna storage holds."""
    return _runs_held(_open_existing(url))


def _open_existing(url: str):
    from .study_storage import open_storage, study_file

    file = study_file(url)
    if file is not None and not file.is_file():  # opening a file storage that is not there creates it
        raise StorageError(f"--storage {url}: no such file")
    return open_storage(url, heartbeat_interval=None, grace_period=None)


def _runs_held(storage) -> list[str]:
    import optuna

    from .study_storage import study_name

    prefix = study_name("")
    return sorted(name[len(prefix):] for name in optuna.get_all_study_names(storage) if name.startswith(prefix))
