"""Soft masks (paper section 4.3): learn alpha per (layer, head) in one training, then harden.

1. soft:    every head starts soft at ``alpha_init``; alpha = sigmoid(theta) is learned with the
            weights. The trial's YAML holds the learned alphas (``soft:``).
2. derived: alpha <= ``alpha_hard`` becomes a hard mask, alpha >= ``alpha_none`` an unmasked head;
            the heads in between stay soft at their learned alpha (or, with ``round``, go to the
            nearer of hard and unmasked). With ``verify``, the derived placement trains once more.
"""

from __future__ import annotations

import dataclasses

from ..runs import TrialRecord
from ..spec import MaskSpec
from .base import Proposal, Strategy


class SoftStrategy(Strategy):
    name = "soft"

    def __init__(self, config):
        super().__init__(config)
        self.stage = "start"
        self.soft_record: TrialRecord | None = None
        self.derived: MaskSpec | None = None
        self.derived_record: TrialRecord | None = None

    def initial_spec(self) -> MaskSpec:
        layers, heads = self.config.layers, self.config.heads
        return MaskSpec(layers=layers, heads=heads, masks=[[]] * layers,
                        soft=[[self.config.soft.alpha_init] * heads] * layers, window=tuple(self.config.window),
                        semantics=self.config.semantics)

    def ask(self) -> list[Proposal]:
        if self.stage == "start":
            self.stage = "soft"
            return self.baselines() + [Proposal(self.initial_spec(), "soft")]
        if self.stage == "soft" and self.soft_record is not None:
            self.stage = "derived"
            if self.soft_record.state != "complete" or self.soft_record.spec.soft is None:
                return []
            self.derived = derive(self.soft_record.spec, self.config.soft)
            if self.config.soft.verify:
                return [Proposal(self.derived, "derived")]
        return []

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        if proposal.step == "soft":
            self.soft_record = record
        elif proposal.step == "derived":
            self.derived_record = record

    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        if self.derived_record is not None and self.derived_record.state == "complete":
            return self.derived_record
        if self.soft_record is not None and self.derived is not None:
            # unverified: the derived placement, with the soft training's measurements
            return dataclasses.replace(self.soft_record, spec=self.derived, step="derived (unverified)")
        return None

    def notes(self) -> list[str]:
        settings = self.config.soft
        if self.derived is None:
            return []
        soft_heads = sum(1 for row in self.derived.alphas() for a in row if 0 < a < 1)
        return [f"learned alphas from trial {self.soft_record.number} (init {settings.alpha_init}); "
                f"alpha <= {settings.alpha_hard} -> hard mask, >= {settings.alpha_none} -> unmasked: "
                f"{self.derived.num_masked} hard, {soft_heads} soft, placement {self.derived.compact()}."]


def derive(learned: MaskSpec, settings) -> MaskSpec:
    """The hard (or mixed) placement that the learned alphas point to."""
    masks, soft = [], []
    for row in learned.alphas():
        layer_masks, layer_soft = [], []
        for head, alpha in enumerate(row):
            if alpha <= settings.alpha_hard or (settings.round and alpha < 0.5):
                layer_masks.append(head)
                layer_soft.append(0.0)
            elif alpha >= settings.alpha_none or settings.round:
                layer_soft.append(1.0)
            else:
                layer_soft.append(round(alpha, 4))
        masks.append(layer_masks)
        soft.append(layer_soft)
    mixed = any(0 < a < 1 for row in soft for a in row)
    return MaskSpec(layers=learned.layers, heads=learned.heads, masks=masks, soft=soft if mixed else None,
                    window=learned.window, semantics=learned.semantics)
