"""TrialRecord: one trained placement, its per-seed metrics and how it was made.

A record round-trips through a trial file: ``to_spec`` writes a valid mask spec whose ``meta``
holds the metrics, and ``from_spec`` reads it back, so reading results needs no search code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..spec import MaskSpec, normalize_als
from ..stats import mean_std

# A trial ends complete, pruned, or in one of these: the states ``--max-failures`` counts and
# tables sum as "failed" (a non-finite loss and out-of-memory are failures with their own cause).
FAILED_STATES = ("failed", "oom", "nan_loss")


@dataclass
class TrialRecord:
    """One trained placement, averaged over its seeds."""

    number: int
    step: str
    spec: MaskSpec
    state: str = "complete"  # complete | pruned | nan_loss | oom | failed
    seeds: list[int] = field(default_factory=list)
    val_top1: list[float] = field(default_factory=list)  # per seed
    test_top1: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    als: list[list[float]] | None = None  # raw ALS, mean over seeds, (L, H)
    als_seeds: list[list[list[float]]] | None = None  # raw ALS of each seed, (seeds, L, H)
    als_uniform: float | None = None  # the ALS of uniform attention on the proxy's grid and window
    alpha_history: dict[int, list[list[float]]] | None = None  # soft masks: epoch -> (L, H) alphas, seed mean
    val_top1_by_part: dict[str, list[float]] | None = None  # a mixed task's parts: part -> top-1 per seed
    seconds: float = 0.0  # training time spent by this run (seeds served from the cache count 0)
    cached: int = 0  # seeds whose results came from the trial cache
    epochs: int = 0
    reason: str = ""
    duplicate_of: int | None = None
    extra: dict = field(default_factory=dict)  # strategy-specific provenance (optuna params, budget...)

    def __post_init__(self):
        # a float even when every seed came from the cache (a sum of nothing is the int 0): a live
        # run and a rebuild from the trial YAMLs must write the same trials.csv
        self.seconds = float(self.seconds)

    @property
    def label(self) -> str:
        """The step, with the preset's name where the step does not say it (``baseline sch1``)."""
        preset = self.spec.meta.get("preset")
        return f"{self.step} {preset}" if preset and preset not in self.step else self.step

    @property
    def top1(self) -> float | None:
        return mean_std(self.val_top1)[0] if self.val_top1 else None

    @property
    def top1_std(self) -> float | None:
        return mean_std(self.val_top1)[1] if self.val_top1 else None

    @property
    def test(self) -> float | None:
        return mean_std(self.test_top1)[0] if self.test_top1 else None

    @property
    def all_cached(self) -> bool:
        """Every seed's result came from the trial cache: the trial cost this run nothing."""
        return bool(self.seeds) and self.cached >= len(self.seeds)

    def normalized_als(self) -> list[list[float]] | None:
        """(L, H) ALS rescaled so that uniform attention is 0 and all attention inside the
        window is 1: (ALS - u) / (1 - u). None without ALS or without u."""
        if not self.als or self.als_uniform is None:
            return None
        return [[normalize_als(a, self.als_uniform) for a in row] for row in self.als]

    def normalized_als_seeds(self) -> list[list[list[float]]] | None:
        """``normalized_als`` of each seed: (seeds, L, H)."""
        if not self.als_seeds or self.als_uniform is None:
            return None
        return [[[normalize_als(a, self.als_uniform) for a in row] for row in seed] for seed in self.als_seeds]

    def to_spec(self, run: str, strategy: str, dataset: str) -> MaskSpec:
        meta = {"strategy": strategy, "run": run, "trial": self.number, "step": self.step, "dataset": dataset,
                "state": self.state, "seeds": list(self.seeds), "top1": self.top1,
                "top1_std": self.top1_std, "top1_seeds": list(self.val_top1),
                "test_top1": self.test, "test_top1_seeds": list(self.test_top1),
                "loss": mean_std(self.loss)[0] if self.loss else None, "als": self.als,
                "als_seeds": self.als_seeds, "als_uniform": self.als_uniform, "seconds": round(self.seconds, 1), "epochs": self.epochs}
        if self.cached:
            meta["cached_seeds"] = self.cached
        if self.val_top1_by_part:
            meta["top1_by_part_seeds"] = {name: list(values) for name, values in self.val_top1_by_part.items()}
        if self.alpha_history:
            meta["alpha_history"] = {int(epoch): rows for epoch, rows in self.alpha_history.items()}
        if self.reason:
            meta["reason"] = self.reason
        if self.duplicate_of is not None:
            meta["duplicate_of"] = self.duplicate_of
        if self.extra:
            meta["extra"] = self.extra
        return self.spec.with_meta(**meta)

    @classmethod
    def from_spec(cls, spec: MaskSpec) -> "TrialRecord":
        meta = dict(spec.meta)
        bare = MaskSpec(layers=spec.layers, heads=spec.heads, masks=spec.masks, window=spec.window,
                        semantics=spec.semantics, soft=spec.soft, pattern=spec.pattern,
                        pattern_seed=spec.pattern_seed, meta={k: v for k, v in meta.items() if k == "preset"})
        return cls(number=int(meta.get("trial", -1)), step=str(meta.get("step", "")), spec=bare,
                   state=str(meta.get("state", "complete")), seeds=list(meta.get("seeds") or []),
                   val_top1=list(meta.get("top1_seeds") or []), test_top1=list(meta.get("test_top1_seeds") or []),
                   loss=[meta["loss"]] if meta.get("loss") is not None else [], als=meta.get("als"),
                   als_seeds=meta.get("als_seeds"), als_uniform=meta.get("als_uniform"), seconds=float(meta.get("seconds") or 0.0),
                   cached=int(meta.get("cached_seeds") or 0), epochs=int(meta.get("epochs") or 0),
                   alpha_history={int(k): v for k, v in (meta.get("alpha_history") or {}).items()} or None,
                   val_top1_by_part={k: list(v) for k, v in (meta.get("top1_by_part_seeds") or {}).items()} or None,
                   reason=str(meta.get("reason", "")), duplicate_of=meta.get("duplicate_of"),
                   extra=dict(meta.get("extra") or {}))

    def summary(self) -> dict:
        """The trial as one row of numbers (means over seeds), for trials.csv and the tables."""
        als = self.normalized_als() or []
        flat = [a for row in als for a in row]
        return {"number": self.number, "step": self.step, "placement": self.spec.compact(),
                "masked": self.spec.num_masked, "soft": self.spec.num_soft, "state": self.state, "top1": self.top1,
                "top1_std": self.top1_std, "test_top1": self.test,
                "test_top1_std": mean_std(self.test_top1)[1] if self.test_top1 else None,
                "loss": mean_std(self.loss)[0] if self.loss else None,
                "norm_als_mean": sum(flat) / len(flat) if flat else None,
                "norm_als_head0": sum(row[0] for row in als) / len(als) if als else None,
                "seeds": len(self.seeds), "cached": self.cached, "seconds": self.seconds,
                "duplicate_of": self.duplicate_of, "reason": self.reason}

    def csv_row(self) -> dict:
        row = self.summary()
        rounded = {key: _round(row[key]) for key in ROUNDED_COLUMNS}
        return {**row, **rounded, "seconds": round(self.seconds, 1)}


ROUNDED_COLUMNS = ("top1", "top1_std", "test_top1", "test_top1_std", "loss", "norm_als_mean", "norm_als_head0")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)
