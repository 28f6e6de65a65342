"""The strategy interface: a tiny ask/tell contract, one strategy per module.

A strategy proposes placements (``ask``) and hears how they did (``tell``); the runner trains
them, with seeds, de-duplication, resume and storage. Like Optuna's ``BaseSampler``, a strategy
never trains anything itself, and every strategy passes the same contract test. The strategies
``maitsearch run`` offers are listed in ``registry.py``.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..config import SearchConfig
from ..errors import ConfigError
from ..events import EventFn, ignore
from ..runs import TrialRecord
from ..spec import PRESETS, MaskSpec, is_compact_text, load_spec, named_preset, parse_compact_text


class Job(abc.ABC):
    """Work other than training a placement with the run's seeds: a supernet's training, a batch
    of scores with inherited weights. The runner runs a job's proposal once, on its executor
    beside the trials of the same batch, and tells the strategy how it ended; the job writes
    what it makes into the run folder itself, where the strategy reads it. Jobs are not trials:
    they are neither cached, replayed nor saved as trial files, so a strategy that asks for jobs
    resumes from the files they wrote (and asks again only for what is missing). A job pickles,
    to run in a worker process."""

    @abc.abstractmethod
    def run(self, proxy, data, on_event) -> Any:
        """Do the work on the proxy's data (``ImageData``); return a ``training.TrialResult``
        whose status says how it ended (its metrics are the job's files)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A few words for progress lines: ``supernet seed 0, 60 epochs``."""


@dataclass
class Proposal:
    """A placement to train. ``proxy_changes`` adjusts the proxy for this trial only (a longer
    budget, say); ``handle`` is the strategy's own bookkeeping (an Optuna trial, for one). With a
    ``job``, the proposal is that job's work instead, and ``spec`` only describes it."""

    spec: MaskSpec
    step: str
    proxy_changes: dict = field(default_factory=dict)
    handle: Any = None
    reuse: TrialRecord | None = None  # an earlier result of the same placement the strategy found itself
    job: Job | None = None

    def key(self) -> str:
        """Same key, same experiment: the canonical placement and any proxy change."""
        changes = ",".join(f"{k}={v}" for k, v in sorted(self.proxy_changes.items()))
        return self.spec.key() + (f"|{changes}" if changes else "")


class Strategy(abc.ABC):
    """How a search chooses what to train next.

    Lifecycle, driven by ``runner.Runner``: constructed from the SearchConfig (settings are
    checked here, before anything is trained); ``attach(store)`` once; then rounds of ``ask()``,
    each proposal trained (or replayed from disk on a resumed run, or reused from an equal
    placement; a job run) and handed back through ``tell``, until ``ask()`` returns []; finally
    ``choose(records)`` names best.yaml, ``answer()`` the strategy's own final step, and
    ``notes()`` explains them. A strategy that waits on something other than training tells
    the display through ``emit``, which the runner sets to its listener, and calls
    ``while_waiting`` now and then, which the runner sets to show the trials other workers
    finish meanwhile. On a resumed run the runner replays finished trials through ``tell`` in
    the original order, so a strategy keeps no state outside what ``tell`` gives it.
    """

    name: ClassVar[str | None] = None

    def __init__(self, config: SearchConfig):
        self.config = config
        self.emit: EventFn = ignore
        self.while_waiting: Callable[[], None] = lambda: None

    def attach(self, store) -> None:
        """Called once with the run's ``RunStore`` before the first ``ask``."""

    @abc.abstractmethod
    def ask(self) -> list[Proposal]:
        """The next placements to train, all independent of each other; [] when finished."""

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        """The trained (or reused, or failed) result of a proposal."""

    def on_epoch(self, proposal: Proposal, seed_index: int, epoch: int, metrics: dict) -> None:
        """Per-epoch validation metrics of a trial; raise ``training.Pruned`` to stop it."""

    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        """The run's answer, best.yaml: the most accurate placement the run measured with all of
        its seeds. Every trial of a run trains the same seeds, so this is a paired comparison, and
        the answer is never worse than a baseline trained beside it."""
        whole = [r for r in records if r.state == "complete" and r.top1 is not None
                 and len(r.val_top1) == self.config.seeds]
        return max(whole, key=lambda r: r.top1, default=None)

    def answer(self) -> TrialRecord | None:
        """The strategy's own final step (the ALS strategy's calibrate step, soft masks' derived
        placement), reported beside best.yaml; None where the strategy has no step of its own."""
        return None

    def notes(self) -> list[str]:
        """Lines for the report: what the strategy decided and why."""
        return []

    # helpers for subclasses
    def spec_of(self, name: str) -> MaskSpec:
        """A preset by name (``sch1@3x5`` gives it its own window instead of the run's), a mask
        spec YAML file, such as another run's ``best.yaml``, or compact text as tables print a
        placement (``777771117177111110101001``), to train it with this run's seeds."""
        if name.endswith((".yaml", ".yml")):
            return self._spec_file(Path(name))
        own = {"window": tuple(self.config.window), "semantics": self.config.semantics}
        if is_compact_text(name):
            spec = parse_compact_text(name, self.config.heads, **own)
            if spec.layers != self.config.layers:
                raise ConfigError(f"placement {name}: head bits for {spec.layers} layers, the run has "
                                  f"{self.config.layers}")
            return spec.with_meta(preset=name)
        if name.partition("@")[0] not in PRESETS:
            sch1 = named_preset("sch1", self.config.layers, self.config.heads).compact()
            raise ConfigError(f"placement {name}: not a preset ({', '.join(PRESETS)}), a spec file (NAME.yaml) "
                              f"or compact head bits (sch1 is {sch1})")
        return named_preset(name, self.config.layers, self.config.heads, **own)

    def _spec_file(self, path: Path) -> MaskSpec:
        spec = load_spec(path)
        if (spec.layers, spec.heads) != (self.config.layers, self.config.heads):
            raise ConfigError(f"placement {path}: the spec is {spec.layers} layers x {spec.heads} heads, "
                             f"the run {self.config.layers} x {self.config.heads}")
        # Named by its folder too: every run's answer is called best.yaml. The file's meta is the
        # other run's record of it (its trial, seeds, accuracy, whether it was a duplicate there);
        # carried into this run's trial it would read back as this run's, so only the name stays.
        if path.parent.name == "trials":  # a trial file of a run: results/RUN/trials/4.yaml
            name = f"{path.parent.parent.name}/trial-{path.stem}"
        else:
            name = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
        return dataclasses.replace(spec, meta={"preset": name})

    def baselines(self) -> list[Proposal]:
        return [Proposal(self.spec_of(name), "baseline") for name in self.config.baselines]
