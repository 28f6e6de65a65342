"""The paper's ALS-guided 3-step strategy (section 4.2).

1. init:      head 0 masked in every layer; train; measure every head's ALS.
2. assign:    per layer l, from ALS(l, head 0): >= als_high, mask every head of l (promote);
              <= als_low, remove the mask; in between, keep head 0 only. Train again.
3. calibrate: in the promoted layers, remove the mask of each head whose ALS (measured in step 2)
              is <= als_low. Train the final placement: that is the run's answer.

The unmasked baseline (and the other configured baselines) train with the same seeds, so the
report can show the gain or the loss. Degenerate outcomes (nothing promoted, every mask removed)
still produce all three steps; a step equal to an earlier placement reuses its result.
"""

from __future__ import annotations

from ..runs import TrialRecord
from ..spec import MaskSpec
from .base import Proposal, Strategy


class AlsStrategy(Strategy):
    name = "als"

    def __init__(self, config):
        super().__init__(config)
        self.stage = "start"
        self.records: dict[str, TrialRecord] = {}
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
        if record.state != "complete" or not record.als:
            self.stopped = f"trial {record.number} ({record.step}) ended {record.state}: no ALS to decide from"
            self.stage = "done"
            return []
        return [next_step(record.als)]

    def _assign(self, als: list[list[float]]) -> Proposal:
        high, low = self.config.als.als_high, self.config.als.als_low
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
        masks = [list(heads) for heads in assigned.masks]
        for layer in self.promoted:
            for head in list(masks[layer]):
                if als[layer][head] <= self.config.als.als_low:
                    masks[layer].remove(head)
                    self.removed_heads.append((layer, head))
        return Proposal(self._spec(MaskSpec(layers=assigned.layers, heads=assigned.heads, masks=masks)), "calibrate")

    def _spec(self, spec: MaskSpec) -> MaskSpec:
        return MaskSpec(layers=spec.layers, heads=spec.heads, masks=spec.masks, window=tuple(self.config.window),
                        semantics=self.config.semantics)

    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        for step in ("calibrate", "assign", "init"):
            record = self.records.get(step)
            if record is not None and record.state == "complete":
                return record
        return None

    def notes(self) -> list[str]:
        high, low = self.config.als.als_high, self.config.als.als_low
        lines = []
        if "init" in self.records and self.stage != "init":
            lines.append(f"step 2 (assign): layers with head-0 ALS >= {high} promoted to all heads masked: "
                         f"{_layers(self.promoted)}; ALS <= {low}, mask removed: {_layers(self.removed_layers)}; "
                         "the rest keep head 0.")
            if not self.promoted:
                lines.append("no layer was promoted, so step 3 (calibrate) has nothing to remove and repeats step 2.")
            if self.records.get("init") and len(self.removed_layers) == self.config.layers:
                lines.append("every layer's head-0 ALS was at or below als_low: step 2 removed every mask, "
                             "so the strategy ends at the unmasked baseline.")
        if "assign" in self.records and self.stage == "calibrate" and self.promoted:
            removed = ", ".join(f"l{layer}h{head}" for layer, head in self.removed_heads) or "none"
            lines.append(f"step 3 (calibrate): masks removed from promoted layers where a head's ALS <= {low}: {removed}.")
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}.")
        return lines


def _layers(layers: list[int]) -> str:
    return ", ".join(map(str, layers)) if layers else "none"
