"""Optuna over placements, with pruning, several objectives and storages shared by many workers.

Search spaces:
- ``counts``: masked heads per layer (canonical), (H+1)^L placements. The default.
- ``full``:   one boolean per (layer, head), 2^(L*H).
- ``blocks``: a staircase of three boundaries b1 <= b2 <= b3: all heads masked below b1, H-1
              below b2, one head below b3, none above; the paper's Sch.2 is one such shape.

The study is warm-started with the ``warm_start`` presets. A placement equal (canonically) to
an earlier trial's reuses its result. Every worker running the same command shares the study;
the budget is ``trials`` non-failed trials over all of them. Each trial's full record is kept in
the study's user attributes, so results can be read from the storage alone.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

from ..errors import AT_LEAST_1, ConfigError, SpecError, StorageError, check_bounds, check_choice
from ..events import StudyWaiting
from ..model.locality import attention_cost
from ..runs import TrialRecord
from ..runs.record import FAILED_STATES
from ..runs.study_storage import (RECORD_ATTR, check_storage_url, experimental_optuna, one_worker_only, open_storage,
                                  redact, redacted_config, single_worker_lock, storage_url, study_name)
from ..spec import MaskSpec, parse_spec
from .base import Proposal, Strategy

SPACES = ("counts", "full", "blocks")
SAMPLERS = ("tpe", "nsga2", "gp", "random")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("accuracy", "attention_cost")


def check_objectives(objectives: list[str]) -> None:
    """Accuracy first (best.yaml and the pruner read it), then optionally attention_cost."""
    if not objectives or objectives[0] != "accuracy" or any(o not in OBJECTIVES for o in objectives):
        raise ConfigError(f"optuna.objectives: expected accuracy first, then optionally attention_cost; "
                          f"got {','.join(objectives)}")


class OptunaStrategy(Strategy):
    name = "optuna"

    def __init__(self, config):
        super().__init__(config)
        settings = config.optuna
        for value, allowed, what in ((settings.space, SPACES, "space"), (settings.sampler, SAMPLERS, "sampler"),
                                     (settings.pruner, PRUNERS, "pruner")):
            check_choice(f"optuna.{what}", value, allowed)
        if settings.storage:
            check_storage_url(storage_url(settings.storage, Path(".")), before_run_folder=True)
        if config.jobs > 1 and one_worker_only(settings.storage, None):
            url = redact(storage_url(settings.storage, Path(".")))
            raise StorageError(f"--jobs {config.jobs}: several Optuna workers cannot share SQLite ({url}); use "
                               "--storage journal:PATH (one host), postgresql://USER@HOST/DB, or none (the run's own)")
        check_objectives(settings.objectives)
        check_bounds(settings, {"heartbeat_interval": AT_LEAST_1, "grace_period": AT_LEAST_1},  # seconds
                     lambda name: f"optuna.{name}")
        self.cost_grid = settings.attention_cost_grid(config.proxy.grid)  # checked here, before a run folder
        self.study = None
        self.storage_url = None
        self.run_name = ""
        self._lock = None
        self._heartbeats: dict[int, tuple[threading.Thread, threading.Event]] = {}

    # ---- wiring ---------------------------------------------------------------------------
    def attach(self, store) -> None:
        import optuna

        settings = self.config.optuna
        self.run_name = store.name
        self.storage_url = storage_url(settings.storage, store.path)
        self._lock = single_worker_lock(self.storage_url)
        storage = open_storage(self.storage_url, heartbeat_interval=settings.heartbeat_interval,
                               grace_period=settings.grace_period)
        directions = ["maximize"] + ["minimize"] * (len(settings.objectives) - 1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(study_name=study_name(store.name), storage=storage, directions=directions,
                                         sampler=self._sampler(), pruner=self._pruner(), load_if_exists=True)
        with experimental_optuna():  # since Optuna 3.2
            self.study.set_metric_names(list(settings.objectives))  # optuna-dashboard labels the axes
        self.study.set_user_attr("maitsearch:config", redacted_config(self.config).to_dict())
        self._restore_trial_files(store)
        if not self.study.user_attrs.get("maitsearch:warm_started"):
            self.study.set_user_attr("maitsearch:warm_started", True)
            for name in settings.warm_start[:self.config.trials]:
                params = self.params_for(self.spec_of(name))
                if params is not None:
                    self.study.enqueue_trial(params, user_attrs={"maitsearch:preset": name}, skip_if_exists=True)

    def _restore_trial_files(self, store) -> None:
        """Write the YAML of every finished trial that the storage has and the folder lacks: a
        worker killed between telling the study and writing the file, or a worker on another
        machine without a shared folder. A worker killed inside ``tell``, after storing the record
        and before the state, leaves a record that its trial (failed for its silent heartbeat)
        contradicts: that one is not written, or the folder would hold a trial the study retried."""
        from .. import atomic

        for trial in self.study.get_trials(deepcopy=False):
            text = trial.user_attrs.get(RECORD_ATTR)
            if text and not store.trial_path(trial.number).exists() and record_agrees(trial, text):
                atomic.write_text(store.trial_path(trial.number), text)

    def _sampler(self):
        import optuna

        # One worker (SQLite) samples reproducibly; workers sharing a study must not move in
        # lockstep, or they would propose the same placements at the same time.
        seed = self.config.proxy.seed if self.storage_url.startswith("sqlite") else None
        # TPE samples at random for its first 10 trials by default, which is a whole budget of
        # expensive proxy trials; the warm start and half the budget are enough to model.
        startup = min(10, max(len(self.config.optuna.warm_start) + 1, self.config.trials // 2))
        return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup),
                "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
                "gp": lambda: optuna.samplers.GPSampler(seed=seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[self.config.optuna.sampler]()

    def _pruner(self):
        import optuna

        epochs = self.config.proxy.epochs
        if self.config.optuna.pruner == "none" or len(self.config.optuna.objectives) > 1:
            return optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
        if self.config.optuna.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 8), max_resource=epochs)
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 3))

    # ---- search space ---------------------------------------------------------------------
    def suggest(self, trial) -> MaskSpec:
        return suggest_placement(trial, self.config)

    def params_for(self, spec: MaskSpec) -> dict | None:
        return params_for_placement(spec, self.config)

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self) -> list[Proposal]:
        from optuna.trial import TrialState

        if not self._slot_left():
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize": we beat ourselves
            trial = self.study.ask()
        # Beat at once: a trial killed before its first beat is never found stale, so never retried.
        self._start_heartbeat(trial)
        if self._rank(trial) > self.config.trials:  # another worker took the last slot meanwhile
            self._stop_heartbeat(trial)
            trial.set_user_attr("maitsearch:reason", "surplus: the study already holds its trials")
            self.study.tell(trial, state=TrialState.FAIL)
            return []
        spec = self.suggest(trial)
        if "maitsearch:preset" in trial.user_attrs:  # a warm start keeps its name in tables and plots
            spec = spec.with_meta(preset=trial.user_attrs["maitsearch:preset"])
        proposal = Proposal(spec, "optuna", handle=trial)
        trial.set_user_attr("maitsearch:key", proposal.key())
        proposal.reuse = self._earlier(proposal.key(), trial.number)
        return [proposal]

    def _slot_left(self) -> bool:
        """Whether the study has room for another trial. When running trials hold its last slots,
        wait for them a while (the grace period and two beats): one whose worker was killed is
        failed for its silence and retried here, where a worker that left at once would end the
        study a trial short. A live trial that outlasts the wait finishes on its own."""
        import optuna
        from optuna.trial import TrialState

        from ..runs.optuna_private import heartbeat_interval

        interval = heartbeat_interval(self.study)
        patience = self.config.optuna.grace_period + 2 * interval if interval else 0
        deadline, told = time.monotonic() + patience, False
        while True:
            with experimental_optuna():
                optuna.storages.fail_stale_trials(self.study)
            # running trials hold a slot; a retry waiting to be asked does not
            held = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                 TrialState.RUNNING))
            if len(held) < self.config.trials:
                return True
            running = sum(t.state == TrialState.RUNNING for t in held)
            if not running or time.monotonic() >= deadline:
                return False
            if not told:
                self.emit(StudyWaiting(running=running, seconds=patience))
                told = True
            time.sleep(min(interval, 5))
            self.while_waiting()

    def _rank(self, trial) -> int:
        """1-based position of ``trial`` among the study's non-failed trials."""
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if t.number <= trial.number and t.state != TrialState.FAIL)

    def _earlier(self, key: str, number: int) -> TrialRecord | None:
        """A completed trial of the same placement, read back from the study itself."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number != number and t.user_attrs.get("maitsearch:key") == key and RECORD_ATTR in t.user_attrs:
                if t.user_attrs.get("maitsearch:duplicate_of") is None:
                    return TrialRecord.from_spec(parse_spec(t.user_attrs[RECORD_ATTR], source=f"trial {t.number}"))
        return None

    def on_epoch(self, proposal: Proposal, seed_index: int, epoch: int, metrics: dict) -> None:
        from ..training import Pruned

        if seed_index != 0 or len(self.config.optuna.objectives) > 1:
            return  # the first seed's curve feeds the pruner; the others must finish
        trial = proposal.handle
        trial.report(metrics["val_top1"], epoch)
        if trial.should_prune():
            raise Pruned(f"pruned by the {self.config.optuna.pruner} pruner after epoch {epoch}")

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        from optuna.trial import TrialState

        trial = proposal.handle
        self._stop_heartbeat(trial)
        trial.set_user_attr(RECORD_ATTR, record.to_spec(self.run_name, "optuna", self.config.proxy.data).to_yaml())
        trial.set_user_attr("maitsearch:compact", record.spec.compact())
        if record.duplicate_of is not None:
            trial.set_user_attr("maitsearch:duplicate_of", record.duplicate_of)
        if record.state == "complete":
            self.study.tell(trial, self.values(record))
        elif record.state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("maitsearch:reason", f"{record.state}: {record.reason}")
            self.study.tell(trial, state=TrialState.FAIL)

    def values(self, record: TrialRecord) -> list[float]:
        values = [record.top1]
        if "attention_cost" in self.config.optuna.objectives:
            values.append(attention_cost(record.spec, self.cost_grid, num_prefix=1))
        return values

    def pareto_numbers(self) -> list[int]:
        return [t.number for t in self.study.best_trials] if self.study is not None else []

    def notes(self) -> list[str]:
        if self.study is None:
            return []
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        count = {state: sum(1 for t in trials if t.state == state) for state in TrialState}
        duplicates = sum(1 for t in trials if t.user_attrs.get("maitsearch:duplicate_of") is not None)
        settings = self.config.optuna
        lines = [f"study {self.study.study_name} on {redact(self.storage_url)}: {count[TrialState.COMPLETE]} complete, "
                 f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed; {duplicates} repeated an "
                 f"earlier placement and reused its result.",
                 f"space {settings.space}, sampler {settings.sampler}, pruner {settings.pruner}, objectives "
                 f"{', '.join(settings.objectives)}; warm start: {', '.join(settings.warm_start) or 'none'}."]
        if len(settings.objectives) > 1:
            lines.append(f"Pareto front: trials {', '.join(map(str, self.pareto_numbers()))}.")
        return lines

    # ---- heartbeats -----------------------------------------------------------------------
    def _start_heartbeat(self, trial) -> None:
        """Optuna beats only inside ``study.optimize``; trials trained through ask/tell beat here."""
        from ..runs.optuna_private import heartbeat_interval, record_heartbeat

        interval = heartbeat_interval(self.study)
        if not interval:
            return
        stop = threading.Event()

        def beat():
            while True:
                try:
                    record_heartbeat(self.study, trial)
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                    pass
                if stop.wait(interval):
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        self._heartbeats[trial.number] = (thread, stop)

    def _stop_heartbeat(self, trial) -> None:
        thread, stop = self._heartbeats.pop(trial.number, (None, None))
        if stop is not None:
            stop.set()
            thread.join()


def record_agrees(trial, text: str) -> bool:
    """Whether a finished Optuna trial's state is the one its record (``text``) was told as; a
    record that does not parse agrees with nothing."""
    from optuna.trial import TrialState

    try:
        told = parse_spec(text, source=f"trial {trial.number}").meta.get("state", "complete")
    except SpecError:
        return False
    return {TrialState.COMPLETE: told == "complete", TrialState.PRUNED: told == "pruned",
            TrialState.FAIL: told in FAILED_STATES}.get(trial.state, False)


def suggest_placement(trial, config) -> MaskSpec:
    """The placement an Optuna trial names in the run's space (``config.optuna.space``), with the
    run's window and semantics. Every strategy that searches with Optuna asks through here."""
    layers, heads = config.layers, config.heads
    space = config.optuna.space
    if space == "counts":
        counts = [trial.suggest_int(f"l{layer}", 0, heads) for layer in range(layers)]
    elif space == "full":
        matrix = [[bool(trial.suggest_int(f"l{layer}h{head}", 0, 1)) for head in range(heads)]
                  for layer in range(layers)]
        return _shaped(MaskSpec.from_matrix(matrix), config)
    else:
        b1 = trial.suggest_int("b1", 0, layers)
        b2 = trial.suggest_int("b2", b1, layers)
        b3 = trial.suggest_int("b3", b2, layers)
        counts = staircase(layers, heads, b1, b2, b3)
    return _shaped(MaskSpec.from_counts(counts, heads), config)


def params_for_placement(spec: MaskSpec, config) -> dict | None:
    """The parameters that make ``suggest_placement`` return ``spec`` (canonically), or None when
    the space cannot express it."""
    counts, layers, heads = spec.counts(), config.layers, config.heads
    space = config.optuna.space
    if space == "counts":
        return {f"l{layer}": count for layer, count in enumerate(counts)}
    if space == "full":
        return {f"l{layer}h{head}": int(masked) for layer, row in enumerate(spec.canonical().matrix())
                for head, masked in enumerate(row)}
    for b1 in range(layers + 1):
        for b2 in range(b1, layers + 1):
            for b3 in range(b2, layers + 1):
                if staircase(layers, heads, b1, b2, b3) == list(counts):
                    return {"b1": b1, "b2": b2, "b3": b3}
    return None


def _shaped(spec: MaskSpec, config) -> MaskSpec:
    return MaskSpec(layers=spec.layers, heads=spec.heads, masks=spec.masks, window=tuple(config.window),
                    semantics=config.semantics)


def staircase(layers: int, heads: int, b1: int, b2: int, b3: int) -> list[int]:
    """Masked-head counts: all heads below b1, H-1 (at least one) below b2, one below b3, then none."""
    second = max(heads - 1, 1)
    return [heads if l < b1 else second if l < b2 else 1 if l < b3 else 0 for l in range(layers)]
