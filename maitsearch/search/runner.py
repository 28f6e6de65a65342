"""The search loop: strategy -> training -> run folder, with seeds, de-duplication and resume.

Strategies only ask and tell. The runner trains every proposal with the configured seeds
(in this process, or ``jobs`` processes at once), reuses earlier results of the same canonical
placement, writes each finished trial atomically, and on a re-run replays the strategy against
the trials already on disk, so nothing finished is trained twice. Each seed's result goes into
the machine's trial cache (``runs/cache.py``) as soon as it finishes, so a crash loses at most
the seeds in flight, and any later run that asks for the same seed of the same experiment
reuses it; a seed another worker is training now is waited for, not trained again (its claim,
``runs/claims.py``). A proposal with a ``job`` (``base.Job``: a supernet's training, a batch of scores) is
run once on the same executor, beside the batch's trials, and only told: a job keeps its own
results in the run folder.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import SearchConfig
from ..data import ImageData
from ..errors import SearchError
from ..events import (CacheEntryIgnored, ClaimBroken, EventFn, JobEnded, JobStarted, RunEnded, RunStarted,
                      SeedWaiting, TrialEnded, TrialReused, TrialSeen, TrialStarted, ignore)
from ..runs import RunStore, TrialRecord
from ..runs.cache import CorruptEntry, TrialCache, cache_folder, cache_key, digest
from ..runs.claims import Watch
from ..runs.record import FAILED_STATES
from ..training import TrialResult
from .aggregate import aggregate
from .base import Proposal, Strategy
from .executors import Unit, busy_cores, make_executor

JOB_NUMBER = -1  # a job is no trial: it takes no trial number


@dataclass
class RunSummary:
    name: str
    path: Path
    records: list[TrialRecord]
    best: TrialRecord | None  # best.yaml: the most accurate placement measured
    answer: TrialRecord | None = None  # the strategy's own final step, where it has one
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trained: int = 0  # trials that trained at least one seed in this session
    reused: int = 0  # trials that repeated an earlier placement of the run
    cached: int = 0  # trials whose every seed came from the trial cache
    resumed: int = 0  # trials already in the run folder when this session started
    seconds: float = 0.0


class Runner:
    """Drives one strategy over one run folder.

    Lifecycle: ``__init__`` attaches the strategy to the store and reads every trial already on
    disk; ``run()`` then loops ask -> resolve (replay from disk, reuse an equal placement, or
    train each seed on the executor; run a job once) -> tell -> save (trials, not jobs), until the
    strategy stops asking; ``finish``
    chooses best.yaml from every trial in the folder, writes the strategy's own answer beside it
    when that differs (answer.yaml), and writes trials.csv.
    The executor is closed when ``run`` returns, even on an exception.
    """

    def __init__(self, config: SearchConfig, store: RunStore, strategy: Strategy, data: ImageData | None = None,
                 on_event: EventFn | None = None, executor=None, cache: TrialCache | None = None,
                 machine_load: float | None = None, helper_workers: int = 0, helper_devices: tuple[str, ...] = ()):
        self.config, self.store, self.strategy = config, store, strategy
        self.machine_load = machine_load  # other work's busy cores, sampled before helpers of this run started
        self.helper_workers = helper_workers  # processes of this run that train beside this one
        self.helper_devices = tuple(helper_devices)  # their GPUs, when they train on GPUs
        self.cache = cache or TrialCache(cache_folder(store.path.parent, config.cache))
        self.leases: dict = {}  # (unit index, seed index) -> the claim this worker holds while it trains
        self.emit = self.strategy.emit = on_event or ignore
        self.strategy.while_waiting = self.show_others
        # A strategy with its own storage (Optuna) first restores any trial file a crash left unwritten.
        self.strategy.attach(store)
        self.records, self.problems = store.load_trials()
        self.replay = {(r.step, r.extra.get("key")): r for r in self.records}
        self.original = {r.extra.get("key"): r for r in self.records if r.state == "complete" and r.duplicate_of is None}
        self.taken = {r.number for r in self.records}  # trial numbers on disk or given out here
        self.shown = set(self.taken)  # trials on the display: this process's, or seen on disk
        self.trained = self.reused = self.cached = 0
        self.resumed = len(self.records)
        self.executor = executor or make_executor(config.jobs, data, self.emit, config.proxy.device)

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> RunSummary:
        start = time.perf_counter()
        self.store.write_trials_csv(self.records)  # whatever a crash left, the table matches the files
        self.emit(RunStarted(name=self.store.name, path=str(self.store.path),
                             strategy=self.strategy.name or self.config.strategy, resumed=self.resumed,
                             workers=self.executor.workers + self.helper_workers, helpers=self.helper_workers,
                             threads=self.executor.threads,
                             devices=tuple(getattr(self.executor, "devices", ())) + self.helper_devices,
                             load=busy_cores() if self.machine_load is None else self.machine_load,
                             cores=os.cpu_count() or 1))
        try:
            while True:
                proposals = self.strategy.ask()
                if not proposals:
                    break
                for proposal, record, new in self._resolve(proposals):
                    # tell before saving: with a storage, the storage is the truth and the file
                    # can be rewritten from it; the other way round could not be undone
                    self.strategy.tell(proposal, record)
                    if new:
                        self._save(record)
                    self._check_failures()
        finally:
            self.executor.close()
            for lease in self.leases.values():  # a fault ended the loop before the units' own release
                self.cache.claims.release(lease)
            self.leases.clear()
        summary = self.finish(time.perf_counter() - start)
        self.emit(RunEnded(summary=summary))
        return summary

    def finish(self, seconds: float = 0.0) -> RunSummary:
        """Choose the answer from every trial on disk (other workers' too) and write best.yaml
        and trials.csv. Called again once helper workers have finished theirs."""
        self.records = self._all_records()
        best, answer = self.strategy.choose(self.records), self.strategy.answer()
        as_spec = lambda record: record.to_spec(self.store.name, self.config.strategy, self.config.proxy.data)  # noqa: E731
        if best is not None:
            self.store.write_best(as_spec(best))
        differs = answer is not None and (best is None or answer.spec.key() != best.spec.key())
        self.store.write_answer(as_spec(answer) if differs else None)
        self.store.write_trials_csv(self.records)
        return RunSummary(self.store.name, self.store.path, self.records, best, answer, self.strategy.notes(),
                          self.problems, self.trained, self.reused, self.cached, self.resumed, seconds)

    def _all_records(self) -> list[TrialRecord]:
        """This process's records, and those other workers on the study wrote to the folder."""
        on_disk = {r.number: r for r in self.store.load_trials()[0]}
        return sorted({**on_disk, **{r.number: r for r in self.records}}.values(), key=lambda r: r.number)

    def _resolve(self, proposals: list[Proposal]):
        """(proposal, record, new) for a batch, each as soon as it is known: replayed from disk
        (not new), reused from an equal placement, or trained. Equal placements within the batch
        train once; the others reuse that result."""
        to_train: list[tuple[Proposal, int]] = []
        repeats: list[tuple[Proposal, int]] = []
        jobs: list[tuple[Proposal, int]] = []  # run once beside the trials, never replayed or saved
        first_of: dict[str, int] = {}
        for index, proposal in enumerate(proposals):
            if proposal.job is not None:
                jobs.append((proposal, index))
                continue
            key = proposal.key()
            # Deterministic strategies replay their steps on resume; strategy-tracked trials
            # (Optuna) are resumed by their own storage and only de-duplicated here.
            replayed = self.replay.get((proposal.step, key)) if proposal.handle is None else None
            earlier = self.original.get(key) or proposal.reuse
            if replayed is not None:
                yield proposal, replayed, False
            elif earlier is not None:
                yield proposal, self._duplicate(earlier, proposal), True
            elif key in first_of:
                repeats.append((proposal, first_of[key]))
            else:
                first_of[key] = index
                to_train.append((proposal, index))
        trained: dict[int, TrialRecord] = {}
        for index, record in self._train(to_train, jobs):
            trained[index] = record
            yield proposals[index], record, proposals[index].job is None
        for proposal, first in repeats:
            yield proposal, self._duplicate(trained[first], proposal), True

    def _duplicate(self, earlier: TrialRecord, proposal: Proposal) -> TrialRecord:
        record = dataclasses.replace(earlier, number=self._take_number(proposal), step=proposal.step,
                                     spec=proposal.spec, seconds=0.0, cached=0, duplicate_of=earlier.number,
                                     extra={**earlier.extra, "key": proposal.key()})
        self.reused += 1
        self.emit(TrialReused(record=record))
        return record

    def _train(self, batch: list[tuple[Proposal, int]], jobs: list[tuple[Proposal, int]] = ()):
        seeds = [self.config.proxy.seed + i for i in range(self.config.seeds)]
        numbers = {index: self._take_number(proposal) for proposal, index in batch}
        # jobs first: a job is long, and the pool starts it at once
        units, cached = self._job_units(jobs), {}
        for proposal, index in batch:
            self.emit(TrialStarted(number=numbers[index], step=proposal.step, placement=proposal.spec.compact(),
                                   seeds=len(seeds)))
            for seed_index, seed in enumerate(seeds):
                proxy = self.config.proxy.replace(seed=seed, **proposal.proxy_changes)
                checkpoint = (str(self.store.path / "checkpoints" / f"{numbers[index]}.pt")
                              if self.config.keep_checkpoints and seed_index == 0 else None)
                unit = Unit(index, seed_index, proposal, proxy, numbers[index], checkpoint)
                if checkpoint is not None:  # weights are not cached: this run trains them itself
                    units.append(unit)
                    continue
                hit = self._cached_key(self._key(proposal, proxy))
                if hit is not None:
                    cached[(index, seed_index)] = hit
                else:
                    units.append(unit)  # claimed when a worker takes it up (_claiming), not before
        results = dict(cached)
        pending = {index: len(seeds) for _, index in batch}
        for _, index in batch:
            pending[index] -= sum(1 for (i, _) in cached if i == index)
        ready = [index for _, index in batch if pending[index] == 0]
        for index in ready:
            yield index, self._finish(batch, index, numbers[index], results, len(seeds), cached)
        for unit, result, from_cache in self._run_units(units):
            if unit.proposal.job is not None:
                yield unit.index, self._job_ended(unit.proposal, result)
                continue
            results[(unit.index, unit.seed_index)] = result
            if from_cache:
                cached[(unit.index, unit.seed_index)] = result
            pending[unit.index] -= 1
            if pending[unit.index] == 0:
                yield unit.index, self._finish(batch, unit.index, numbers[unit.index], results, len(seeds), cached)

    def _run_units(self, units: list[Unit]):
        """(unit, result, from_cache): the units this worker claims, trained on the executor, then
        the units other workers hold, as their results reach the cache. A unit whose holder gave
        its claim up without a result, or whose holder's heartbeat went silent, is claimed and
        trained here. Every claim is released once its result is in the cache, or on any exit."""
        poll = min(1.0, self.cache.claims.grace / 10)
        waiting: list[tuple[Unit, Watch]] = []
        try:
            while units or waiting:
                finished_elsewhere: list[tuple[Unit, TrialResult]] = []
                claimed = self._claiming(units, waiting, finished_elsewhere)
                for unit, result in self.executor.run(claimed, self.strategy):
                    if unit.proposal.job is None:
                        self.cache.put(self._key(unit.proposal, unit.proxy), result)  # first: then a waiter finds it
                        self._release(unit)
                    yield unit, result, False
                    while finished_elsewhere:
                        yield *finished_elsewhere.pop(0), True
                for unit, hit in finished_elsewhere:
                    yield unit, hit, True
                units, still = [], []
                for unit, watch in waiting:
                    hit, watch = self._claim(unit, watch)
                    if hit is not None:
                        yield unit, hit, True
                    elif watch is None:
                        units.append(unit)
                    else:
                        still.append((unit, watch))
                waiting = still
                if waiting and not units:
                    time.sleep(poll)
        finally:
            for lease in self.leases.values():
                self.cache.claims.release(lease)
            self.leases.clear()

    def _claiming(self, units: list[Unit], waiting: list, finished_elsewhere: list):
        """The units for the executor, each claimed as the executor takes it up: a worker holds
        claims only on what it trains now, so a unit queued behind them stays free for an idle
        worker of another run. A unit someone else claimed first joins ``waiting``; one they
        finished meanwhile joins ``finished_elsewhere``."""
        for unit in units:
            if unit.proposal.job is not None or unit.checkpoint is not None \
                    or (unit.index, unit.seed_index) in self.leases:  # no cache key, or claimed while waiting
                yield unit
                continue
            hit, watch = self._claim(unit, warn=False)  # its first look, in _train, warned of a corrupt entry
            if hit is not None:
                finished_elsewhere.append((unit, hit))
            elif watch is None:
                yield unit
            else:
                waiting.append((unit, watch))

    def _claim(self, unit: Unit, watch: Watch | None = None,
               warn: bool = True) -> tuple[TrialResult | None, Watch | None]:
        """(the cached result, None), (None, None) when this worker now holds the claim, or
        (None, a watch on the other worker's claim) while it trains the unit."""
        key = self._key(unit.proposal, unit.proxy)
        hit = self._cached_key(key, warn=warn and watch is None)  # a corrupt entry is reported once, not at every look
        if hit is not None:
            return hit, None
        name = digest(key)
        if watch is not None:
            state = watch.look()
            if state == "alive":
                return None, watch
            if state == "stale" and watch.holder is not None:
                if self.cache.claims.break_stale(name, watch.holder):
                    self.emit(ClaimBroken(number=unit.number, placement=unit.proposal.spec.compact(),
                                          seed=unit.proxy.seed, pid=watch.holder.pid, host=watch.holder.host,
                                          silent=round(watch.silent(), 1)))
        lease = self.cache.claims.try_claim(name)
        if lease is not None:
            # the holder may have stored it and let go since the first look (which warned of a corrupt entry)
            hit = self._cached_key(key, warn=False)
            if hit is not None:
                self.cache.claims.release(lease)
                return hit, None
            self.leases[(unit.index, unit.seed_index)] = lease
            return None, None
        fresh = Watch(self.cache.claims, name)
        fresh.look()
        holder = fresh.holder
        if holder is not None and (watch is None or watch.holder is None or holder.token != watch.holder.token):
            self.emit(SeedWaiting(number=unit.number, placement=unit.proposal.spec.compact(), seed=unit.proxy.seed,
                                  pid=holder.pid, host=holder.host))
        return None, fresh

    def _release(self, unit: Unit) -> None:
        lease = self.leases.pop((unit.index, unit.seed_index), None)
        if lease is not None:
            self.cache.claims.release(lease)

    def _job_units(self, jobs: list[tuple[Proposal, int]]) -> list[Unit]:
        for proposal, _ in jobs:
            self.emit(JobStarted(step=proposal.step, what=proposal.job.describe()))
        return [Unit(index, 0, proposal, self.config.proxy.replace(**proposal.proxy_changes), JOB_NUMBER)
                for proposal, index in jobs]

    def _job_ended(self, proposal: Proposal, result: TrialResult) -> TrialRecord:
        """What the strategy hears of a job: how it ended and what it cost (its results are its files)."""
        self.emit(JobEnded(step=proposal.step, what=proposal.job.describe(), status=result.status,
                           seconds=result.seconds, reason=result.reason))
        return TrialRecord(number=JOB_NUMBER, step=proposal.step, spec=proposal.spec, state=result.status,
                           seconds=result.seconds, epochs=result.epochs, reason=result.reason)

    def _finish(self, batch, index: int, number: int, results: dict, num_seeds: int, cached: dict) -> TrialRecord:
        proposal = next(p for p, i in batch if i == index)
        per_seed: list[TrialResult] = [results[(index, s)] for s in range(num_seeds)]
        from_cache = frozenset(s for s in range(num_seeds) if (index, s) in cached)
        record = aggregate(number, proposal, per_seed, [self.config.proxy.seed + s for s in range(num_seeds)],
                           cached=from_cache)
        if len(from_cache) == num_seeds:
            self.cached += 1
        else:
            self.trained += 1
        if record.state == "complete":
            self.original.setdefault(proposal.key(), record)
        self.emit(TrialEnded(record=record))
        return record

    def _take_number(self, proposal: Proposal) -> int:
        """The proposal's trial number: Optuna's own, else the lowest no trial holds. A resumed run
        replays its strategy's proposals in the same order, so the trials a kill interrupted get
        back the numbers they had (a later one that finished first keeps its own), as in a run
        that never stopped."""
        number = getattr(proposal.handle, "number", None)
        if number is None:
            number = next(n for n in range(len(self.taken) + 1) if n not in self.taken)
        self.taken.add(number)
        return number

    def _save(self, record: TrialRecord) -> None:
        self.records = [r for r in self.records if r.number != record.number] + [record]
        self.replay[(record.step, record.extra.get("key"))] = record
        self.store.write_trial(record, self.config.strategy, self.config.proxy.data)
        self.shown.add(record.number)
        # Other workers on the study write their trials into the same folder: the table holds
        # every trial on disk, not just this process's, so it is whole whoever writes last.
        everything = self._all_records()
        self.store.write_trials_csv(everything)
        self.show_others(everything)

    def show_others(self, records: list[TrialRecord] | None = None) -> None:
        """Tell the display about trials other workers finished since it last heard. Polled, it
        lists the trial folder and reads the files only when one is new."""
        if records is None:
            names = {path.stem for path in self.store.trials_dir.glob("*.yaml")}
            if names <= {str(number) for number in self.shown}:
                return
            records = self._all_records()
        for record in records:
            if record.number not in self.shown:
                self.shown.add(record.number)
                self.emit(TrialSeen(record=record))

    def _check_failures(self) -> None:
        failed = [r for r in self.records if r.state in FAILED_STATES]
        if len(failed) > self.config.max_failures:
            last = failed[-1]
            raise SearchError(f"run {self.store.name}: {len(failed)} trials failed (more than --max-failures "
                              f"{self.config.max_failures}); last: trial {last.number} {last.state}: {last.reason}")

    # ---- the trial cache --------------------------------------------------------------------
    def _key(self, proposal: Proposal, proxy) -> dict:
        devices = getattr(self.executor, "devices", ())
        if devices:  # the GPU model the workers train on (search/devices.py refuses a mix of models)
            proxy = proxy.replace(device=devices[0])
        return cache_key(proposal.spec, proxy, threads=self.executor.threads)

    def _cached_key(self, key: dict, warn: bool = True) -> TrialResult | None:
        try:
            return self.cache.get(key)
        except CorruptEntry as err:
            if warn:
                self.emit(CacheEntryIgnored(message=str(err)))
            return None


__all__ = ["Runner", "RunSummary"]
