"""The strategy interface: a tiny ask/tell contract, one strategy per module.

A strategy proposes placements (``ask``) and hears how they did (``tell``); the runner trains
them, with seeds, de-duplication, resume and storage. Like Optuna's ``BaseSampler``, a strategy
never trains anything itself, and every strategy passes the same contract test.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import SearchConfig
from ..results import TrialRecord
from ..spec import MaskSpec, load_spec, preset

STRATEGIES: dict[str, type["Strategy"]] = {}


@dataclass
class Proposal:
    """A placement to train. ``proxy_changes`` adjusts the proxy for this trial only (a longer
    budget, say); ``handle`` is the strategy's own bookkeeping (an Optuna trial, for one)."""

    spec: MaskSpec
    step: str
    proxy_changes: dict = field(default_factory=dict)
    handle: Any = None
    reuse: TrialRecord | None = None  # an earlier result of the same placement the strategy found itself

    def key(self) -> str:
        """Same key, same experiment: the canonical placement and any proxy change."""
        changes = ",".join(f"{k}={v}" for k, v in sorted(self.proxy_changes.items()))
        return self.spec.key() + (f"|{changes}" if changes else "")


class Strategy(abc.ABC):
    name: ClassVar[str]

    def __init__(self, config: SearchConfig):
        self.config = config

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            STRATEGIES[cls.name] = cls

    def attach(self, store) -> None:
        """Called once with the run's ``RunStore`` before the first ``ask``."""

    @abc.abstractmethod
    def ask(self) -> list[Proposal]:
        """The next placements to train, all independent of each other; [] when finished."""

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        """The trained (or reused, or failed) result of a proposal."""

    def on_epoch(self, proposal: Proposal, seed_index: int, epoch: int, metrics: dict) -> None:
        """Per-epoch validation metrics of a trial; raise ``engine.Pruned`` to stop it."""

    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        """The run's answer (best.yaml). Default: the highest mean validation top-1."""
        done = [r for r in records if r.state == "complete" and r.top1 is not None]
        return max(done, key=lambda r: r.top1, default=None)

    def notes(self) -> list[str]:
        """Lines for the report: what the strategy decided and why."""
        return []

    # helpers for subclasses
    def spec_of(self, name: str) -> MaskSpec:
        """A preset by name (``sch1@3x5`` gives it its own window instead of the run's), or a mask
        spec YAML file, such as another run's ``best.yaml``, to train it with this run's seeds."""
        if name.endswith((".yaml", ".yml")):
            return self._spec_file(Path(name))
        name, _, window = name.partition("@")
        if window:
            try:
                window = tuple(int(part) for part in window.lower().split("x"))
            except ValueError:
                raise ValueError(f"placement {name}@{window}: expected a window such as @3x5") from None
        return preset(name, self.config.layers, self.config.heads, window=window or tuple(self.config.window),
                      semantics=self.config.semantics).with_meta(preset=f"{name}@{window[0]}x{window[1]}"
                                                                 if window else name)

    def _spec_file(self, path: Path) -> MaskSpec:
        spec = load_spec(path)
        if (spec.layers, spec.heads) != (self.config.layers, self.config.heads):
            raise ValueError(f"placement {path}: the spec is {spec.layers} layers x {spec.heads} heads, "
                             f"the run {self.config.layers} x {self.config.heads}")
        # Named by its folder too: every run's answer is called best.yaml.
        return spec.with_meta(preset=f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem)

    def baselines(self) -> list[Proposal]:
        return [Proposal(self.spec_of(name), "baseline") for name in self.config.baselines]


class PresetsStrategy(Strategy):
    """No search: train the placements in ``baselines`` (presets or spec files; the paper's tables
    are such comparisons) and answer with the most accurate."""

    name = "presets"

    def __init__(self, config):
        super().__init__(config)
        self.asked = False

    def ask(self) -> list[Proposal]:
        if self.asked:
            return []
        self.asked = True
        specs = [self.spec_of(name) for name in self.config.baselines]
        return [Proposal(spec, spec.meta["preset"]) for spec in specs]


def make_strategy(config: SearchConfig) -> Strategy:
    from . import als, optuna, soft  # noqa: F401  (each module registers its strategy; presets is here)

    if config.strategy not in STRATEGIES:
        raise ValueError(f"strategy: unknown strategy {config.strategy!r}; choose one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[config.strategy](config)
