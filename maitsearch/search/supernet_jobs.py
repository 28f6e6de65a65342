"""The supernet strategy's work, as jobs the runner executes (``base.Job``): the placement sampler
a supernet trains with, a supernet's training, and a batch of scores with inherited weights.

Each job writes what it makes into the run folder (the weights and a summary; a chunk of scores),
so a resumed run reads it back instead of doing it again. The training and the scoring
themselves are the training layer's (``training/supernet.py``).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..spec import MaskSpec
from ..training import TrialResult
from .base import Job
from .optuna_study import staircase

SAMPLINGS = ("counts", "heads", "fair", "staircase")


@functools.lru_cache(maxsize=8)
def _staircases(layers: int) -> tuple[tuple[int, int, int], ...]:
    """Every (b1, b2, b3) with 0 <= b1 <= b2 <= b3 <= layers: the blocks space, C(L + 3, 3) shapes."""
    return tuple((b1, b2, b3) for b1 in range(layers + 1) for b2 in range(b1, layers + 1)
                 for b3 in range(b2, layers + 1))


@dataclass(frozen=True)
class PlacementSampler:
    """The placement a supernet's training step runs: a pure function of (seed, step), so a
    resumed training runs the steps it would have run, and a test can draw as many as it likes.

    - ``counts``: every layer's count of masked heads uniform over 0..H, the lowest heads masked;
    - ``heads``: every head masked with probability 1/2 (each layer's 2^H subsets equally likely);
    - ``fair``: counts, each of 0..H exactly once per layer in every H+1 consecutive steps, in an
      order drawn per layer and cycle (FairNAS's strict fairness, one placement per batch);
    - ``staircase``: uniform over the blocks space's staircases (``optuna_study.staircase``).
    """

    sampling: str
    layers: int
    heads: int
    seed: int
    window: tuple[int, int] = (3, 3)
    semantics: str = "paper"

    def __call__(self, step: int) -> MaskSpec:
        layers, heads = self.layers, self.heads
        shape = dict(window=tuple(self.window), semantics=self.semantics)
        if self.sampling == "fair":
            cycle, position = divmod(step, heads + 1)
            rng = random.Random(f"fair:{self.seed}:{cycle}")  # str seeds hash the same in every process
            counts = [rng.sample(range(heads + 1), heads + 1)[position] for _ in range(layers)]
            return MaskSpec.from_counts(counts, heads, **shape)
        rng = random.Random(f"{self.sampling}:{self.seed}:{step}")
        if self.sampling == "heads":
            return MaskSpec.from_matrix([[rng.random() < 0.5 for _ in range(heads)] for _ in range(layers)],
                                        **shape)
        if self.sampling == "staircase":
            shapes = _staircases(layers)
            return MaskSpec.from_counts(staircase(layers, heads, *shapes[rng.randrange(len(shapes))]), heads,
                                        **shape)
        return MaskSpec.from_counts([rng.randint(0, heads) for _ in range(layers)], heads, **shape)

    def masked_share(self, draws: int = 4000) -> list[list[float]]:
        """(L, H) share of ``draws`` steps in which each head was masked."""
        totals = [[0] * self.heads for _ in range(self.layers)]
        for step in range(draws):
            for layer, row in enumerate(self(step).matrix()):
                for head, masked in enumerate(row):
                    totals[layer][head] += masked
        return [[count / draws for count in row] for row in totals]

    def descriptor(self) -> MaskSpec:
        """A spec that stands for the supernet in the runner's records and events: every head soft
        at the share of steps it ran unmasked (0 would be always masked, 1 never)."""
        soft = [[min(0.99, max(0.01, round(1.0 - share, 2))) for share in row] for row in self.masked_share(1000)]
        return MaskSpec(layers=self.layers, heads=self.heads, masks=[[]] * self.layers, soft=soft,
                        window=tuple(self.window), semantics=self.semantics)


@dataclass
class TrainSupernet(Job):
    """Train one supernet (``training.supernet.train_supernet``) on the training images minus the
    held-out ones; weights to ``out``, a summary beside them (``<out stem>.json``)."""

    sampler: PlacementSampler
    epochs: int
    holdout: float
    views: int
    out: str

    def describe(self) -> str:
        return f"supernet seed {self.sampler.seed}, {self.epochs} epochs, {self.sampler.sampling} sampling"

    def run(self, proxy, data, on_event) -> TrialResult:
        from ..training.supernet import held_out, train_supernet

        proxy = proxy.replace(seed=self.sampler.seed)
        if proxy.shift_augment:  # the proxy's own augmentation, as fit applies it
            data = data.with_shift(proxy.shift_augment)
        data = held_out(data, self.holdout, self.views)
        result = train_supernet(self.sampler, proxy, data, epochs=self.epochs, out=self.out, on_event=on_event)
        summary = {"seed": self.sampler.seed, "sampling": self.sampler.sampling, "status": result.status,
                   "epochs": result.epochs, "steps": result.steps, "seconds": round(result.seconds, 1),
                   "train_loss": result.train_loss, "train_images": data.size("train"),
                   "held_out_images": data.size("search"), "history": result.history}
        atomic.write_text(summary_path(self.out), json.dumps(summary, indent=1))
        return result


def summary_path(weights: str | Path) -> Path:
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}.json")


@dataclass
class ScorePlacements(Job):
    """Score placements with every supernet's inherited weights on the held-out images; the rows
    (``training.supernet.inherited_scores``, in order) go to ``out`` as JSON."""

    weights: list[str]
    placements: list[dict]  # MaskSpec.to_dict() each: plain data, to cross into a worker
    holdout: float
    views: int
    out: str
    finetune_steps: int = 0

    def describe(self) -> str:  # the step says what they are for: score search, score fidelity
        what = f"{len(self.placements)} placement(s) on the supernets' weights"
        return what + (f", each fine-tuned {self.finetune_steps} steps" if self.finetune_steps else "")

    def run(self, proxy, data, on_event) -> TrialResult:
        import time

        from ..training.supernet import held_out, inherited_scores, load_supernet

        start = time.perf_counter()
        if proxy.shift_augment:
            data = data.with_shift(proxy.shift_augment)
        data = held_out(data, self.holdout, self.views)
        models = [load_supernet(path, proxy, data) for path in self.weights]
        specs = [MaskSpec.from_dict(placement) for placement in self.placements]
        rows = inherited_scores(models, specs, proxy, data, finetune_steps=self.finetune_steps, seed=proxy.seed)
        atomic.write_text(self.out, json.dumps(rows))
        return TrialResult(status="complete", seconds=time.perf_counter() - start)
