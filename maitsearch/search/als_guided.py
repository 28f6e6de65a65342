"""The paper's ALS-guided 3-step strategy (section 4.2), on normalized ALS.

1. init:      head 0 masked in every layer; train; measure every head's ALS.
2. assign:    per layer l, from the normalized ALS of head 0: at or above the high level, mask
              every head of l (promote); at or below the low level, remove the mask; in
              between, keep head 0 only. Train again.
3. calibrate: in the promoted layers, remove the mask of each head whose normalized ALS
              (measured in step 2) is at or below the low level. Train: that is the strategy's
              answer.

The levels are the paper's "close to 1" and "close to 0". With ``thresholds: absolute`` they are
``als_high`` and ``als_low``. With ``thresholds: rank`` (the default) they are read off step 1's
own ALS: the most local ``promote`` fraction of layers is promoted and the least local
``remove`` fraction loses its mask. A proxy trained for minutes has a compressed ALS scale
(its masked heads rarely reach the paper's 0.9), and rank levels keep the rule's meaning there.

Step 2 decides each layer on a mean over a few seeds, and layers near a cut-off can go either
way on other seeds or another machine (results/FINDINGS.md, "Reproducibility"): the notes name
the layers whose mean lies within one standard error of a cut-off.

The unmasked baseline (and the other configured baselines) train with the same seeds, so the
report can show the gain or the loss. Degenerate outcomes (nothing promoted, every mask removed)
still produce all three steps; a step equal to an earlier placement reuses its result.
"""

from __future__ import annotations

import math

from ..errors import ConfigError, check_choice
from ..runs import TrialRecord
from ..spec import MaskSpec
from ..stats import mean_std
from .base import Proposal, Strategy

THRESHOLDS = ("absolute", "rank")


class AlsStrategy(Strategy):
    name = "als"

    def __init__(self, config):
        super().__init__(config)
        settings = config.als
        check_choice("als.thresholds", settings.thresholds, THRESHOLDS)
        if not (0 <= settings.promote <= 1 and 0 <= settings.remove <= 1 and settings.promote + settings.remove <= 1):
            raise ConfigError(f"als.promote {settings.promote} and als.remove {settings.remove}: fractions of the "
                              "layers, each in [0, 1], together at most 1")
        if settings.als_low >= settings.als_high:
            raise ConfigError(f"als.als_low {settings.als_low} must be below als.als_high {settings.als_high}")
        self.stage = "start"
        self.records: dict[str, TrialRecord] = {}
        self.levels: tuple[float, float] | None = None
        self.promoted: list[int] = []
        self.removed_layers: list[int] = []
        self.removed_heads: list[tuple[int, int]] = []
        self.stopped = ""

    def ask(self) -> list[Proposal]:
        if self.stage == "start":
            self.stage = "init"
            return self.baselines() + [Proposal(self.spec_of("sch1"), "init")]
        if self.stage == "init" and "init" in self.records:
            self.stage = "assign"
            return self._after(self.records["init"], self._assign)
        if self.stage == "assign" and "assign" in self.records:
            self.stage = "calibrate"
            return self._after(self.records["assign"], self._calibrate)
        return []

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        if proposal.step in ("init", "assign", "calibrate"):
            self.records[proposal.step] = record

    def _after(self, record: TrialRecord, next_step) -> list[Proposal]:
        als = record.normalized_als() if record.state == "complete" else None
        if als is None:
            self.stopped = f"trial {record.number} ({record.step}) ended {record.state}: no ALS to decide from"
            self.stage = "done"
            return []
        return [next_step(als)]

    def rule_levels(self, head0: list[float]) -> tuple[float, float]:
        """(high, low): a layer whose masked head reaches ``high`` is promoted; one at or below
        ``low`` loses its mask."""
        settings = self.config.als
        if settings.thresholds == "absolute":
            return settings.als_high, settings.als_low
        ranked = sorted(head0, reverse=True)
        top, bottom = round(settings.promote * len(ranked)), round(settings.remove * len(ranked))
        high = ranked[top - 1] if top else math.inf
        low = ranked[len(ranked) - bottom] if bottom else -math.inf
        return high, low

    def _assign(self, als: list[list[float]]) -> Proposal:
        high, low = self.levels = self.rule_levels([row[0] for row in als])
        counts = []
        for layer, row in enumerate(als):
            if row[0] >= high:
                self.promoted.append(layer)
                counts.append(self.config.heads)
            elif row[0] <= low:
                self.removed_layers.append(layer)
                counts.append(0)
            else:
                counts.append(1)
        return Proposal(self._spec(MaskSpec.from_counts(counts, self.config.heads)), "assign")

    def _calibrate(self, als: list[list[float]]) -> Proposal:
        assigned = self.records["assign"].spec
        low = self.levels[1]
        masks = [list(heads) for heads in assigned.masks]
        for layer in self.promoted:
            for head in list(masks[layer]):
                if als[layer][head] <= low:
                    masks[layer].remove(head)
                    self.removed_heads.append((layer, head))
        return Proposal(self._spec(MaskSpec(layers=assigned.layers, heads=assigned.heads, masks=masks)), "calibrate")

    def _spec(self, spec: MaskSpec) -> MaskSpec:
        return MaskSpec(layers=spec.layers, heads=spec.heads, masks=spec.masks, window=tuple(self.config.window),
                        semantics=self.config.semantics)

    def answer(self) -> TrialRecord | None:
        """The last step that finished: the strategy's own answer."""
        for step in ("calibrate", "assign", "init"):
            record = self.records.get(step)
            if record is not None and record.state == "complete":
                return record
        return None

    def notes(self) -> list[str]:
        lines = []
        if self.levels is not None:
            high, low = self.levels
            settings = self.config.als
            how = ("absolute levels" if settings.thresholds == "absolute" else
                   f"rank levels: the most local {settings.promote:.0%} and the least local {settings.remove:.0%} "
                   "of layers by step 1's masked-head ALS")
            lines.append(f"step 2 (assign), {how}: normalized ALS >= {high:+.3f} promoted to all heads masked: "
                         f"layers {_layers(self.promoted)}; <= {low:+.3f}, mask removed: layers "
                         f"{_layers(self.removed_layers)}; the rest keep head 0.")
            if not self.promoted:
                lines.append("no layer was promoted, so step 3 (calibrate) has nothing to remove and repeats step 2.")
            if len(self.removed_layers) == self.config.layers:
                lines.append("every layer's head-0 ALS was at or below the low level: step 2 removed every mask, "
                             "so the strategy ends at the unmasked baseline.")
            lines += self._close_calls()
        if "assign" in self.records and self.stage == "calibrate" and self.promoted:
            removed = ", ".join(f"l{layer}h{head}" for layer, head in self.removed_heads) or "none"
            lines.append(f"step 3 (calibrate): masks removed from promoted layers where a head's normalized ALS "
                         f"<= {self.levels[1]:+.3f}: {removed}.")
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}.")
        return lines

    def _close_calls(self) -> list[str]:
        """Layers step 2 could have decided the other way: their head-0 ALS (mean over step 1's
        seeds) lies within one standard error of a cut-off, which is the level itself for
        absolute levels and, for rank levels, halfway between the last layer in and the first
        out."""
        init = self.records.get("init")
        per_seed = init.normalized_als_seeds() if init is not None else None
        if not per_seed or len(per_seed) < 2:
            return []
        spread = [mean_std([seed[layer][0] for seed in per_seed]) for layer in range(len(per_seed[0]))]
        if self.config.als.thresholds == "absolute":
            cuts = dict(zip(("promotion", "removal"), self.levels))
        else:  # by step 2's own decisions: a level recomputed from these means could differ in the last bit
            cuts = {"promotion": self._halfway(spread, self.promoted, lowest_in=True),
                    "removal": self._halfway(spread, self.removed_layers, lowest_in=False)}
        parts = []
        for name, cut in cuts.items():
            if cut is None:
                continue
            close = [layer for layer, (mean, std) in enumerate(spread)
                     if abs(mean - cut) < std / math.sqrt(len(per_seed))]
            if close:
                parts.append(f"{name} at {cut:+.3f}: layers {_layers(close)}")
        if not parts:
            return []
        return [f"close calls in step 2 (head-0 ALS, mean of {len(per_seed)} seeds, within one standard error of a "
                f"cut-off; other seeds, or another machine, may decide them the other way): {'; '.join(parts)}."]

    @staticmethod
    def _halfway(spread: list[tuple[float, float]], chosen: list[int], lowest_in: bool) -> float | None:
        """Halfway between the chosen layer nearest the rest and the rest's nearest to it."""
        inside = [spread[layer][0] for layer in chosen]
        outside = [mean for layer, (mean, _) in enumerate(spread) if layer not in chosen]
        if not inside or not outside:
            return None
        if lowest_in:
            return (min(inside) + max(outside)) / 2
        return (max(inside) + min(outside)) / 2


def _layers(layers: list[int]) -> str:
    return ", ".join(map(str, layers)) if layers else "none"
