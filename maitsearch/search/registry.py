"""The strategies ``maitsearch run --strategy`` offers, by name."""

from __future__ import annotations

from ..config import SearchConfig
from ..errors import check_choice
from .als_guided import AlsStrategy
from .base import Strategy
from .optuna_study import OptunaStrategy
from .presets import PresetsStrategy
from .soft_masks import SoftStrategy
from .supernet import SupernetStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    AlsStrategy.name: AlsStrategy,
    OptunaStrategy.name: OptunaStrategy,
    SoftStrategy.name: SoftStrategy,
    SupernetStrategy.name: SupernetStrategy,
    PresetsStrategy.name: PresetsStrategy,
}


def make_strategy(config: SearchConfig) -> Strategy:
    check_choice("strategy", config.strategy, sorted(STRATEGIES))
    return STRATEGIES[config.strategy](config)
