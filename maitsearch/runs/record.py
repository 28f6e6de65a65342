"""TrialRecord: one trained placement, its per-seed metrics and how it was made.

A record round-trips through a trial file: ``to_spec`` writes a valid mask spec whose ``meta``
holds the metrics, and ``from_spec`` reads it back, so reading results needs no search code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..spec import MaskSpec
from ..stats import mean_std


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
    als: list[list[float]] | None = None  # mean over seeds, (L, H)
    seconds: float = 0.0
    epochs: int = 0
    reason: str = ""
    duplicate_of: int | None = None
    extra: dict = field(default_factory=dict)  # strategy-specific provenance (optuna params, budget...)

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

    def to_spec(self, run: str, strategy: str, dataset: str) -> MaskSpec:
        meta = {"strategy": strategy, "run": run, "trial": self.number, "step": self.step, "dataset": dataset,
                "state": self.state, "seeds": list(self.seeds), "top1": _round(self.top1),
                "top1_std": _round(self.top1_std), "top1_seeds": [_round(v) for v in self.val_top1],
                "test_top1": _round(self.test), "test_top1_seeds": [_round(v) for v in self.test_top1],
                "loss": _round(mean_std(self.loss)[0]) if self.loss else None, "als": self.als,
                "seconds": round(self.seconds, 1), "epochs": self.epochs}
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
                   seconds=float(meta.get("seconds") or 0.0), epochs=int(meta.get("epochs") or 0),
                   reason=str(meta.get("reason", "")), duplicate_of=meta.get("duplicate_of"),
                   extra=dict(meta.get("extra") or {}))

    def summary(self) -> dict:
        """The trial as one row of numbers (means over seeds), for trials.csv and the tables."""
        als = self.als or []
        flat = [a for row in als for a in row]
        return {"number": self.number, "step": self.step, "placement": self.spec.compact(),
                "masked": self.spec.num_masked, "state": self.state, "top1": self.top1,
                "top1_std": self.top1_std, "test_top1": self.test,
                "test_top1_std": mean_std(self.test_top1)[1] if self.test_top1 else None,
                "loss": mean_std(self.loss)[0] if self.loss else None,
                "als_mean": sum(flat) / len(flat) if flat else None,
                "als_head0_mean": sum(row[0] for row in als) / len(als) if als else None,
                "seeds": len(self.seeds), "seconds": self.seconds, "duplicate_of": self.duplicate_of,
                "reason": self.reason}

    def csv_row(self) -> dict:
        row = self.summary()
        rounded = {key: _round(row[key]) for key in ROUNDED_COLUMNS}
        return {**row, **rounded, "seconds": round(self.seconds, 1)}


ROUNDED_COLUMNS = ("top1", "top1_std", "test_top1", "test_top1_std", "loss", "als_mean", "als_head0_mean")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)
