"""Rich progress display driven by the library's typed progress events (``maitsearch.events``)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..events import (CacheEntryIgnored, ClaimBroken, EpochDone, HelpersWaiting, JobEnded, JobStarted, MeasuringStarted,
                      RunEnded, RunStarted, SeedEnded, SeedStarted, SeedWaiting, StepDone, StudyWaiting,
                      TrainingStarted, TrialEnded, TrialReused, TrialSeen, TrialStarted, WorkerDied, WorkerEpoch)


class BarsWhenNeeded(Progress):
    """A ``Progress`` that starts drawing with its first bar. A command refused after entering
    it (a storage that does not answer, a spec that does not fit the model) then prints its one
    error line and nothing else: a started display would leave an empty line behind."""

    def __enter__(self) -> "BarsWhenNeeded":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.live.is_started:
            self.stop()

    def add_task(self, *args, **kwargs):
        self.start()  # a no-op once started
        return super().add_task(*args, **kwargs)


def make_progress(console: Console) -> Progress:
    return BarsWhenNeeded(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                          console=console, transient=False)


class TrainingBars:
    """Turns one training's events into an epoch bar and a step bar inside a ``Progress``."""

    def __init__(self, progress: Progress, label: str = "epochs"):
        self.progress = progress
        self.label = label
        self.epochs = None
        self.steps = None
        self.epoch_ended = False

    def __call__(self, event) -> None:
        match event:
            case TrainingStarted(epochs=epochs, first_epoch=first) if first >= epochs:
                pass  # a finished training resumed: no bars to fill
            case TrainingStarted(epochs=epochs, steps_per_epoch=steps, first_epoch=first):
                if self.epochs is None:
                    self.epochs = self.progress.add_task(self.label, total=epochs, completed=first, status="")
                    self.steps = self.progress.add_task("  steps", total=steps, status="")
                else:
                    self.progress.reset(self.epochs, total=epochs, completed=first, description=self.label,
                                        status="")
                    self.progress.reset(self.steps, total=steps)
                self.epoch_ended = False
            case StepDone(loss=loss) if self.steps is not None:
                if self.epoch_ended:  # the step bar starts over here, so the last epoch's stays full
                    self.progress.reset(self.steps)
                    self.epoch_ended = False
                self.progress.advance(self.steps)
                self.progress.update(self.steps, status=f"loss {loss:.3f}")
            case EpochDone() if self.epochs is not None:
                self.progress.advance(self.epochs)
                self.epoch_ended = True
                if event.val_top1 is not None:
                    self.progress.update(self.epochs, status=f"val top-1 {event.val_top1 * 100:.1f}%")
            case MeasuringStarted() if self.steps is not None:
                self.progress.update(self.steps, status="measuring ALS")

    def finish(self) -> None:
        for task in (self.epochs, self.steps):
            if task is not None:
                self.progress.remove_task(task)
        self.epochs = self.steps = None


@contextmanager
def training_bars(console: Console, label: str = "epochs") -> Iterator[TrainingBars]:
    with make_progress(console) as progress:
        yield TrainingBars(progress, label)


class RunView:
    """The live view of a search: one line per finished trial above epoch and step bars."""

    def __init__(self, console: Console, progress: Progress):
        self.console = console
        self.progress = progress
        self.bars = TrainingBars(progress)
        self.trial_task = None
        self.best: tuple[float, int] | None = None
        self.seeds = 1
        # grows to the longest step printed, so a step named after a spec file keeps later lines in columns
        self.step_width = 10

    def __call__(self, event) -> None:
        match event:
            case RunStarted():
                resumed = f", resuming with {event.resumed} finished trial(s)" if event.resumed else ""
                self.console.print(f"run {event.name} ({event.strategy}) in {event.path}{resumed}", markup=False)
                helpers = f" ({event.helpers} of them helper worker(s))" if event.helpers else ""
                if event.devices:
                    self.console.print(f"training in {event.workers} process(es), {gpu_placement(event.devices)}"
                                       f"{helpers}", markup=False)
                else:
                    self.console.print(f"training in {event.workers} process(es) x {event.threads} thread(s)"
                                       f"{helpers}; {event.load:.1f} of {event.cores} cores busy with other work",
                                       markup=False)
            case TrialStarted():
                self.seeds = event.seeds
                description = f"trial {event.number} {event.step} {event.placement}"
                if self.trial_task is None:
                    self.trial_task = self.progress.add_task(description, total=self.seeds, status=self._best())
                else:
                    self.progress.reset(self.trial_task, total=self.seeds, description=description,
                                        status=self._best())
            case SeedStarted() if self.trial_task is not None:
                self.progress.update(self.trial_task, status=f"seed {event.seed} | {self._best()}")
            case SeedEnded() if self.trial_task is not None:
                self.progress.advance(self.trial_task)
            case WorkerEpoch() if self.trial_task is not None:
                top1 = "" if event.val_top1 is None else f", val {event.val_top1 * 100:.1f}"
                self.progress.update(self.trial_task, status=f"trial {event.number} seed {event.seed}: epoch "
                                                             f"{event.epoch + 1}{top1} | {self._best()}")
            case TrainingStarted() | StepDone() | EpochDone() | MeasuringStarted():
                self.bars(event)
                if isinstance(event, MeasuringStarted) and self.trial_task is not None:
                    self.progress.advance(self.trial_task)
            case TrialEnded(record=record) | TrialReused(record=record) | TrialSeen(record=record):
                if record.state == "complete" and record.top1 is not None:
                    if self.best is None or record.top1 > self.best[0]:
                        self.best = (record.top1, record.number)
                self.step_width = max(self.step_width, len(record.step))
                by = "  (another worker)" if isinstance(event, TrialSeen) else ""
                self.console.print(trial_line(record, self.step_width) + by, markup=False)
            case JobStarted() if self.trial_task is not None:
                self.progress.update(self.trial_task, status=f"{event.what} | {self._best()}")
            case JobEnded():
                self.step_width = max(self.step_width, len(event.step))
                state = "" if event.status == "complete" else f"  [{event.status}: {event.reason}]"
                self.console.print(f"job       {event.step:<{self.step_width}} {event.what}: "
                                   f"{event.seconds:.0f} s{state}", markup=False)
            case SeedWaiting():
                self.console.print(f"waiting for {event.placement} seed {event.seed}, trained by pid {event.pid} "
                                   f"on {event.host}", markup=False)
            case ClaimBroken():
                self.console.print(f"claim on {event.placement} seed {event.seed} by pid {event.pid} on {event.host} "
                                   f"silent for {event.silent:.0f} s: training it here", markup=False)
            case WorkerDied():
                again = f"; starting again: {_seeds(event.retried)}" if event.retried else ""
                lost = f"; failed, its worker died twice: {_seeds(event.failed)}" if event.failed else ""
                self.console.print(f"warning: a worker process died (killed from outside, such as by the system "
                                   f"for memory, or crashed){again}{lost}", markup=False, style="yellow")
            case StudyWaiting():
                self.console.print(f"the study is full but {event.running} trial(s) of other workers still run: "
                                   f"waiting up to {event.seconds:.0f} s to retry any whose worker died",
                                   markup=False)
            case HelpersWaiting():
                self.console.print(f"waiting for {event.helpers} helper worker(s) to finish their last trials",
                                   markup=False)
            case CacheEntryIgnored():
                self.console.print(f"warning: {event.message}", markup=False, style="yellow")
            case RunEnded():
                self.bars.finish()
                if self.trial_task is not None:  # the view may see another run (calibrate --fidelity)
                    self.progress.remove_task(self.trial_task)
                    self.trial_task = None

    def _best(self) -> str:
        return "best: -" if self.best is None else f"best: {self.best[0] * 100:.2f} (trial {self.best[1]})"


def gpu_placement(devices) -> str:
    """``one per GPU: cuda:0-3``, or ``round-robin over 4 GPUs: cuda:0,1,2,3,0,1``."""
    indices = [int(device.split(":")[1]) for device in devices]
    distinct = sorted(set(indices))
    if len(distinct) < len(indices):
        return f"round-robin over {len(distinct)} GPUs: cuda:{','.join(str(i) for i in indices)}"
    if len(distinct) > 2 and distinct == list(range(distinct[0], distinct[-1] + 1)) and distinct == indices:
        return f"one per GPU: cuda:{distinct[0]}-{distinct[-1]}"
    return f"one per GPU: cuda:{','.join(str(i) for i in indices)}"


def trial_line(record, step_width: int = 10) -> str:
    from ..stats import format_mean_std
    from .render import trial_time

    top1, test = format_mean_std(record.val_top1), format_mean_std(record.test_top1)
    time = trial_time(record)
    what = f"= trial {record.duplicate_of}" if record.duplicate_of is not None else (
        time if time == "cached" else f"{time} s")
    state = "" if record.state == "complete" else f"  [{record.state}: {record.reason}]"
    return (f"trial {record.number:>3} {record.step:<{step_width}} {record.spec.label():<26} val {top1:>14}  "
            f"test {test:>14}  {what}{state}")


def _seeds(pairs) -> str:
    return ", ".join(f"trial {number} seed {seed}" for number, seed in pairs)
