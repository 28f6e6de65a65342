"""Soft masks (paper section 4.3): learn alpha per (layer, head) in one training, then harden.

1. soft:    every head (or, with ``initial: sch3``, every head of the first 7/8 of the layers)
            starts soft at ``alpha_init``; alpha = sigmoid(theta) is learned with the weights, at
            its own learning rate (``ProxyConfig.alpha_lr_scale``). The trial's YAML holds the
            learned alphas (``soft:``) and their trajectory per epoch.
2. derived: alpha <= ``alpha_hard`` becomes a hard mask, alpha >= ``alpha_none`` an unmasked head;
            the heads in between go to the nearer of the two (``round``, the default) or stay
            soft at their learned alpha. With ``verify``, the derived placement trains once more:
            that is the strategy's answer.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError, check_choice
from ..runs import TrialRecord
from ..spec import MaskSpec, preset
from .base import Proposal, Strategy

INITIAL = ("all", "sch3")


class SoftStrategy(Strategy):
    name = "soft"

    def __init__(self, config):
        super().__init__(config)
        settings = config.soft
        check_choice("soft.initial", settings.initial, INITIAL)
        if not 0.0 < settings.alpha_init < 1.0:
            raise ConfigError(f"soft.alpha_init: must be strictly between 0 and 1, got {settings.alpha_init}")
        if not 0.0 <= settings.alpha_hard < settings.alpha_none <= 1.0:
            raise ConfigError(f"soft.alpha_hard {settings.alpha_hard} must be below soft.alpha_none "
                              f"{settings.alpha_none}, both in [0, 1]")
        self.stage = "start"
        self.soft_record: TrialRecord | None = None
        self.derived: MaskSpec | None = None
        self.derived_record: TrialRecord | None = None

    def initial_spec(self) -> MaskSpec:
        layers, heads, settings = self.config.layers, self.config.heads, self.config.soft
        shape = dict(window=tuple(self.config.window), semantics=self.config.semantics)
        if settings.initial == "sch3":
            return preset("sch3", layers, heads, alpha=settings.alpha_init, **shape)
        return MaskSpec(layers=layers, heads=heads, masks=[[]] * layers, soft=[[settings.alpha_init] * heads] * layers,
                        **shape)

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

    def answer(self) -> TrialRecord | None:
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
        learned = [a for row in self.soft_record.spec.alphas() for a in row if 0 < a < 1]
        spread = (f"they end between {min(learned):.3f} and {max(learned):.3f} (spread {max(learned) - min(learned):.3f})"
                  if learned else "none stayed soft")
        rule = ("the rest rounded to the nearer" if settings.round else "the rest kept soft")
        return [f"learned alphas from trial {self.soft_record.number} (init {settings.alpha_init}, learning rate "
                f"{self.config.proxy.alpha_lr_scale:g}x the weights'): {spread}.",
                f"alpha <= {settings.alpha_hard} -> hard mask, >= {settings.alpha_none} -> unmasked, {rule}: "
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
