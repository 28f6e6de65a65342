"""Progress events: what long-running library code tells a display while it works.

The library never prints. Training, the executors and the search loop call an ``on_event``
callback with these frozen dataclasses, and the CLI turns them into progress bars and lines.
They pickle, so worker processes send them over a queue unchanged. Dispatch on the type
(``isinstance`` or ``match``), never on strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union


# ---- one training (the proxy's fit, or full training) ----------------------------------
@dataclass(frozen=True)
class TrainingStarted:
    epochs: int
    steps_per_epoch: int
    first_epoch: int = 0  # > 0 when full training resumes from a checkpoint


@dataclass(frozen=True)
class StepDone:
    epoch: int
    step: int
    loss: float


@dataclass(frozen=True)
class EpochDone:
    epoch: int
    metrics: dict = field(default_factory=dict)  # train_loss, train_top1, val_top1 (None if not evaluated), lr, ...

    @property
    def val_top1(self) -> float | None:
        return self.metrics.get("val_top1")


@dataclass(frozen=True)
class MeasuringStarted:
    """Training is over; test accuracy and ALS are being measured."""


@dataclass(frozen=True)
class TrainingPlan:
    """How a full training runs: its processes, and what the global batch and the lr came to."""

    recipe: str  # light or deit
    processes: int  # torchrun's world size; 1 without it
    backend: str | None  # nccl, gloo, or None for one process
    device: str  # this process's (rank 0's)
    batch_size: int  # per process
    grad_accum_steps: int
    global_batch: int  # batch_size x processes x grad_accum_steps
    lr: float
    lr_rule: str  # how the lr came about: "0.0005 x 128 / 512 = 0.000125", or "--lr"
    epochs: int
    first_epoch: int = 0  # a resumed training's epochs already done


# ---- executors: one (placement, seed) unit at a time, here or in worker processes -------
@dataclass(frozen=True)
class SeedStarted:
    number: int  # trial number
    seed: int
    seed_index: int


@dataclass(frozen=True)
class SeedEnded:
    number: int
    seed: int
    status: str
    val_top1: float | None


@dataclass(frozen=True)
class WorkerEpoch:
    """An epoch finished in a worker process (steps stay there: they would flood the queue)."""

    number: int
    seed: int
    epoch: int
    val_top1: float | None


# ---- the search loop ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunStarted:
    name: str
    path: str
    strategy: str
    resumed: int  # finished trials found on disk
    workers: int = 1  # training processes, helpers included
    helpers: int = 0  # of them, Optuna helper workers: their trials reach the folder, not these events
    threads: int = 1  # torch threads in each
    load: float = 0.0  # the machine's 1-minute load average when the run started
    cores: int = 1
    devices: tuple[str, ...] = ()  # each process's GPU (cuda:N), helpers last; empty on the CPU


@dataclass(frozen=True)
class TrialStarted:
    number: int
    step: str
    placement: str  # compact form
    seeds: int


@dataclass(frozen=True)
class TrialEnded:
    record: Any  # runs.TrialRecord, trained now


@dataclass(frozen=True)
class TrialReused:
    record: Any  # runs.TrialRecord, the result of an equal placement trained earlier


@dataclass(frozen=True)
class TrialSeen:
    """A trial another worker of this run finished, found in the run folder (a helper worker's,
    or one of another host on the same study)."""

    record: Any  # runs.TrialRecord


@dataclass(frozen=True)
class JobStarted:
    """A strategy's job (``search.base.Job``: a supernet's training, a batch of scores) was handed
    to the executor."""

    step: str
    what: str  # the job's own few words


@dataclass(frozen=True)
class JobEnded:
    step: str
    what: str
    status: str
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class CacheEntryIgnored:
    """A trial-cache entry that could not be read; its seed is trained again."""

    message: str


@dataclass(frozen=True)
class SeedWaiting:
    """Another worker holds the claim on this (placement, seed): this one waits for its result."""

    number: int
    placement: str  # compact form
    seed: int
    pid: int  # the holder's, on its own host
    host: str


@dataclass(frozen=True)
class ClaimBroken:
    """A claim whose heartbeat was silent past the grace period: its worker is taken for dead,
    and this one trains the seed."""

    number: int
    placement: str
    seed: int
    pid: int
    host: str
    silent: float  # seconds the heartbeat had not moved


@dataclass(frozen=True)
class WorkerDied:
    """A worker process of the pool died (killed from outside, often by the system for memory, or
    a crash in native code), taking the pool and every seed in flight with it: those seeds start
    again in a fresh pool, except any whose worker has now died twice, which fail."""

    retried: tuple[tuple[int, int], ...]  # (trial number, seed) of each seed started again
    failed: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class StudyWaiting:
    """The study's last slots are held by trials other workers are running: this worker waits
    up to ``seconds`` before it leaves, because a trial whose worker died is retried here."""

    running: int
    seconds: float


@dataclass(frozen=True)
class HelpersWaiting:
    """This process is done; the run's helper workers are still training their last trials."""

    helpers: int


@dataclass(frozen=True)
class RunEnded:
    summary: Any  # search.RunSummary


Event = Union[TrainingStarted, StepDone, EpochDone, MeasuringStarted, TrainingPlan, SeedStarted, SeedEnded, WorkerEpoch,
              RunStarted, TrialStarted, TrialEnded, TrialReused, TrialSeen, JobStarted, JobEnded, CacheEntryIgnored,
              SeedWaiting, ClaimBroken, WorkerDied, StudyWaiting, HelpersWaiting, RunEnded]
EventFn = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default listener."""
