"""Executors: where trials train, in this process or in a pool of processes.

The proxies are small, so one process rarely uses two cores well (measured: two threads give
1.2-1.35x one thread), and two one-thread processes train about 1.5x more trials per hour.
``jobs > 1`` therefore runs independent (placement, seed) units in ``jobs`` processes, each
with ``cores / jobs`` threads. On GPUs each worker process is pinned to its own GPU
(search/devices.py). Failures never escape a unit: out-of-memory, a non-finite loss
or any exception becomes a ``TrialResult`` with a state and a one-line reason.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from .. import atomic
from ..config import ProxyConfig
from ..data import ImageData, load_data
from ..errors import SearchError
from ..events import EpochDone, EventFn, SeedEnded, SeedStarted, WorkerDied, WorkerEpoch, ignore
from ..spec import MaskSpec
from ..training import TrialResult, fit
from .devices import pin_process, worker_devices


@dataclass
class Unit:
    """One proposal trained with one seed."""

    index: int
    seed_index: int
    proposal: object  # search.base.Proposal
    proxy: ProxyConfig
    number: int
    checkpoint: str | None = None  # where to save the trained weights, if anywhere


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def train_unit(spec: MaskSpec, proxy: ProxyConfig, data: ImageData, on_epoch=None, on_event=None,
               checkpoint: str | None = None) -> TrialResult:
    try:
        result = fit(spec, proxy, data, on_epoch=on_epoch, on_event=on_event, keep_model=checkpoint is not None)
        if result.model is not None:
            atomic.save_torch(checkpoint, result.model.state_dict())
            result.model = None
        return result
    except (torch.OutOfMemoryError, MemoryError) as err:
        return TrialResult(status="oom", reason=one_line(err))
    except Exception as err:  # noqa: BLE001 - a trial's crash must not end the search
        if "out of memory" in str(err).lower():
            return TrialResult(status="oom", reason=one_line(err))
        return TrialResult(status="failed", reason=one_line(err))


def run_job(job, proxy: ProxyConfig, data: ImageData, on_event=None) -> TrialResult:
    """A strategy's job (``base.Job``), failing as a trial fails: never past this call."""
    try:
        return job.run(proxy, data, on_event or ignore)
    except (torch.OutOfMemoryError, MemoryError) as err:
        return TrialResult(status="oom", reason=one_line(err))
    except Exception as err:  # noqa: BLE001 - a job's crash is the strategy's to report
        return TrialResult(status="failed", reason=one_line(err))


class DataCache:
    def __init__(self, data: ImageData | None = None):
        self.loaded: dict[tuple, ImageData] = {}
        self.given = data

    def get(self, proxy: ProxyConfig) -> ImageData:
        if self.given is not None:
            return self.given
        key = (proxy.data, proxy.image_size, proxy.data_dir, proxy.train_copies)
        if key not in self.loaded:
            self.loaded[key] = load_data(proxy.data, image_size=proxy.image_size, data_dir=proxy.data_dir,
                                         train_copies=proxy.train_copies)
        return self.loaded[key]


def busy_cores(window: float = 0.3) -> float:
    """Cores that other work keeps busy now: sampled from /proc/stat over ``window`` seconds
    while this process sleeps, else the 1-minute load average. The load average alone lags:
    a minute after a job ends it still reads about 0.5 and cost a fresh run one of two workers."""
    try:
        before = _cpu_times()
        time.sleep(window)
        after = _cpu_times()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average on this platform
            return 0.0
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])  # idle and iowait
    cores = os.cpu_count() or 1
    return cores * (1 - idle / total) if total > 0 else 0.0


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


_last_free: tuple[float, int] | None = None


def free_cores() -> int:
    """Cores not busy with other work: at least 1. Two processes that each take every core on a
    busy 2-core machine measured 40 times slower. One sample serves for a few seconds, so the
    pool and its workers' threads are sized from the same reading."""
    global _last_free
    if _last_free is None or time.monotonic() - _last_free[0] > 5:
        cores = os.cpu_count() or 1
        _last_free = (time.monotonic(), max(1, min(cores, round(cores - busy_cores()))))
    return _last_free[1]


def worker_threads(jobs: int) -> int:
    """Each of ``jobs`` training processes gets an equal share of the free cores: more threads
    than cores makes every process wait on the others."""
    return max(1, free_cores() // jobs)


class SerialExecutor:
    """Trains units one after the other in this process, with per-epoch callbacks (pruning) and
    per-step progress events."""

    workers = 1

    def __init__(self, data: ImageData | None = None, emit: EventFn | None = None, device: str | None = None):
        self.data = DataCache(data)
        self.emit = emit or ignore
        self.device = device  # a GPU (cuda:N) every unit trains on; None: each unit's own proxy.device
        self.devices = (device,) if device else ()
        # torch's threads (all cores unless OMP_NUM_THREADS says otherwise), but no more than
        # the cores other work leaves free; part of each unit's trial-cache key
        self.threads = min(torch.get_num_threads(), free_cores())

    def run(self, units: Iterable[Unit], strategy) -> Iterator[tuple[Unit, TrialResult]]:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for unit in units:
                if unit.proposal.job is not None:
                    yield unit, run_job(unit.proposal.job, unit.proxy, self.data.get(unit.proxy), self.emit)
                    continue
                self.emit(SeedStarted(number=unit.number, seed=unit.proxy.seed, seed_index=unit.seed_index))
                on_epoch = (lambda epoch, metrics, unit=unit:
                            strategy.on_epoch(unit.proposal, unit.seed_index, epoch, metrics))
                proxy = unit.proxy if self.device is None else unit.proxy.replace(device=self.device)
                result = train_unit(unit.proposal.spec, proxy, self.data.get(unit.proxy), on_epoch=on_epoch,
                                    on_event=self.emit, checkpoint=unit.checkpoint)
                yield unit, result
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        pass


_WORKER_DATA: DataCache | None = None
_WORKER_EVENTS = None
_WORKER_DEVICE: str | None = None  # the GPU this worker process is pinned to, as it sees it


def _init_worker(threads: int, events, placements=None) -> None:
    global _WORKER_DATA, _WORKER_EVENTS, _WORKER_DEVICE
    if placements is not None:  # first, before anything starts CUDA in this process
        _WORKER_DEVICE = pin_process(placements.get())
    torch.set_num_threads(threads)
    _WORKER_DATA, _WORKER_EVENTS = DataCache(), events


def _worker_placement() -> tuple[int, str | None, str | None]:
    """(pid, the device this worker trains on, its CUDA_VISIBLE_DEVICES): what a placement test reads."""
    return os.getpid(), _WORKER_DEVICE, os.environ.get("CUDA_VISIBLE_DEVICES")


def _train_in_worker(spec_dict: dict, proxy_dict: dict, checkpoint: str | None, number: int) -> dict:
    proxy = ProxyConfig(**proxy_dict)
    if _WORKER_DEVICE is not None:
        proxy = proxy.replace(device=_WORKER_DEVICE)

    def forward(event) -> None:  # epochs only: steps would flood the queue
        if isinstance(event, EpochDone):
            _WORKER_EVENTS.put(WorkerEpoch(number=number, seed=proxy.seed, epoch=event.epoch,
                                           val_top1=event.val_top1))

    return train_unit(MaskSpec.from_dict(spec_dict), proxy, _WORKER_DATA.get(proxy), on_event=forward,
                      checkpoint=checkpoint).to_dict()


def _job_in_worker(job, proxy_dict: dict) -> dict:
    proxy = ProxyConfig(**proxy_dict)
    return run_job(job, proxy, _WORKER_DATA.get(proxy)).to_dict()


class PoolExecutor:
    """Trains units in ``jobs`` processes at once. Per-epoch callbacks do not cross processes,
    so strategies that prune run as separate worker processes instead (see optuna_study.py).

    A worker process that dies (killed from outside, as the system does when memory runs out, or
    a crash in native code) breaks the whole pool: Python's pool ends every other worker too, and
    every unit in flight loses its training, with nothing to say whose worker died. The pool is
    started again and the lost units run again one at a time, so the next death has a culprit: a
    unit whose worker dies while it runs alone, ``SOLO_TRIES`` times, fails with that reason, and
    one placement that cannot be trained neither ends the search nor takes other units with it."""

    SOLO_TRIES = 2

    def __init__(self, jobs: int, emit: EventFn | None = None, devices: tuple[str, ...] = ()):
        import multiprocessing

        self.emit = emit or ignore
        self.workers = jobs
        self.devices = tuple(devices)  # one per worker on GPUs (search/devices.py), else empty
        self.threads = worker_threads(jobs)
        self._context = multiprocessing.get_context("spawn")
        self._manager = self._context.Manager()
        self.events = self._manager.Queue()  # workers' epoch events, for the live view
        self.pool = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        placements = None
        if self.devices:  # each worker process takes the next device as it starts
            placements = self._manager.Queue()
            for device in self.devices:
                placements.put(device)
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context, initializer=_init_worker,
                                   initargs=(self.threads, self.events, placements))
        # Start every worker now and hear from each: the pool spawns a worker after it wakes its
        # watcher thread for the call, so a worker spawned on demand can die unwatched, its death
        # noticed only when another result comes (never, if none is due). A worker that answered
        # has been seen by the watcher, which then notices its death at once.
        started = [pool.submit(os.getpid) for _ in range(self.workers)]
        wait(started)
        failed = next((future.exception() for future in started if future.exception() is not None), None)
        if failed is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            raise SearchError(f"the training worker processes did not start ({one_line(failed)}); their own "
                              "error is printed above")
        return pool

    def run(self, units: Iterable[Unit], strategy) -> Iterator[tuple[Unit, TrialResult]]:
        """Takes the next unit only when a worker is free: the runner claims a unit as it is
        taken, so nothing queued here is held back from another run's idle worker."""
        queue, futures = iter(units), {}
        suspects: list[Unit] = []  # lost when a worker died; each runs alone until it ends
        solo_deaths: dict[tuple[int, int], int] = {}  # by (index, seed_index), the runner's name for a unit

        def submit_one() -> bool:
            if suspects:
                if futures:
                    return False
                unit = suspects.pop(0)
            else:
                unit = next(queue, None)
                if unit is None:
                    return False
            if unit.proposal.job is not None:  # the runner reports jobs itself
                futures[self.pool.submit(_job_in_worker, unit.proposal.job, unit.proxy.to_dict())] = unit
                return True
            future = self.pool.submit(_train_in_worker, unit.proposal.spec.to_dict(), unit.proxy.to_dict(),
                                      unit.checkpoint, unit.number)
            futures[future] = unit
            self.emit(SeedStarted(number=unit.number, seed=unit.proxy.seed, seed_index=unit.seed_index))
            return True

        def fill() -> None:
            while len(futures) < self.workers and submit_one():
                pass

        fill()
        while futures:
            done, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
            self._forward_events()
            if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                yield from self._restart(futures, suspects, solo_deaths)
            else:
                for future in done:
                    unit = futures.pop(future)
                    fill()  # before the result is handed on: the freed worker starts at once
                    yield unit, self._result(unit, future)
            fill()

    def _result(self, unit: Unit, future) -> TrialResult:
        try:
            result = TrialResult(**future.result())
        except Exception as err:  # noqa: BLE001 - whatever ends a unit fails that unit only
            result = TrialResult(status="failed", reason=one_line(err))
        return self._ended(unit, result)

    def _ended(self, unit: Unit, result: TrialResult) -> TrialResult:
        if unit.proposal.job is None:
            self.emit(SeedEnded(number=unit.number, seed=unit.proxy.seed, status=result.status,
                                val_top1=result.val_top1))
        return result

    def _restart(self, futures: dict, suspects: list, solo_deaths: dict) -> Iterator[tuple[Unit, TrialResult]]:
        """After a worker died: hand on what had finished, queue the lost units to run alone (a
        unit that died alone is the culprit: once more, then it fails), start a fresh pool."""
        wait(futures)  # a broken pool ends every future at once
        alone = len(futures) == 1
        lost, finished = [], []
        for future, unit in futures.items():
            (lost if isinstance(future.exception(), BrokenProcessPool) else finished).append((future, unit))
        futures.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start_pool()
        again, failed = [], []
        for _, unit in lost:
            key = (unit.index, unit.seed_index)
            solo_deaths[key] = solo_deaths.get(key, 0) + alone
            (failed if solo_deaths[key] >= self.SOLO_TRIES else again).append(unit)
        suspects[:0] = again
        self.emit(WorkerDied(retried=tuple((u.number, u.proxy.seed) for u in again),
                             failed=tuple((u.number, u.proxy.seed) for u in failed)))
        for future, unit in finished:
            yield unit, self._result(unit, future)
        for unit in failed:
            reason = (f"its worker process died each time it ran alone ({self.SOLO_TRIES} tries): killed from "
                      "outside, such as by the system for memory, or crashed")
            yield unit, self._ended(unit, TrialResult(status="failed", reason=reason))

    def _forward_events(self) -> None:
        import queue

        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.emit(event)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_executor(jobs: int, data: ImageData | None = None, emit: EventFn | None = None, device: str = "cpu"):
    """``jobs`` workers for a search whose proxy trains on ``device``: on GPUs, each worker is
    placed on one (round-robin); on the CPU nothing about the device changes."""
    devices = worker_devices(device, jobs)
    if jobs <= 1:
        return SerialExecutor(data, emit, device=devices[0] if devices else None)
    return PoolExecutor(jobs, emit, devices)
