"""No search: train named placements side by side with the same seeds."""

from __future__ import annotations

from .base import Proposal, Strategy


class PresetsStrategy(Strategy):
    """No search: train the placements in ``baselines`` (presets, spec files or compact text;
    the paper's tables are such comparisons) and answer with the most accurate."""

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
