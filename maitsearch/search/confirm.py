"""Confirm a finished run's answer on seeds it never trained.

A search's best.yaml is the most accurate of many noisy means on the run's own seeds, so its
gain there is optimistic: on this project's proxies the best of 9 trials lost 1.3 points on
fresh seeds, the strategy's own answer 0.2 (docs/DESIGN.md section 10). A confirmation is a
presets run that retrains the run's few most accurate placements, its baselines and its
strategy's answer on the next seeds, and chooses among them there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import SearchConfig
from ..errors import ConfigError
from ..runs import RunStore, TrialRecord
from ..runs.transfer_report import TRANSFER_FILE
from ..spec import load_spec
from .presets import PresetsStrategy


# One seed cannot say whether a difference is noise; a run of one-seed trials (Optuna's
# default) is confirmed on three, the fewest that give a spread.
MIN_SEEDS = 3


def confirmation_config(store: RunStore, top: int = 3, seeds: int | None = None, *, first_seed: int | None = None,
                        also: tuple[str, ...] = ()) -> SearchConfig:
    """A presets config for ``store``'s run: its baselines and the placements ``also`` names
    (presets, spec files or compact text), then its ``top`` most accurate other placements and
    its answer.yaml (as trial files), each on ``seeds`` seeds (default: the run's, at least 3)
    from ``first_seed`` (default: the seed after the run's own). Several runs confirmed on one
    ``first_seed`` share their fresh seeds, so their answers compare paired, baselines once."""
    if not store.exists() and (store.path / TRANSFER_FILE).is_file():
        raise ConfigError(f"confirm {store.name}: a transfer study, not a run; confirm one of its two runs: "
                          f"`maitsearch confirm proxy --results {store.path}` (or target)")
    if not store.exists():
        raise ConfigError(f"confirm {store.name}: no run folder at {store.path}")
    if top < 1:
        raise ConfigError(f"--top {top}: confirm at least one placement")
    source = store.load_config()
    placements = list(dict.fromkeys([*source.baselines, *also]))
    taken = {PresetsStrategy(source).spec_of(name).key() for name in placements}
    placements += run_placements(store, top, taken)
    first = source.proxy.seed + source.seeds if first_seed is None else first_seed
    count = seeds or max(source.seeds, MIN_SEEDS)
    own = range(source.proxy.seed, source.proxy.seed + source.seeds)
    if set(own) & set(range(first, first + count)):
        raise ConfigError(f"--first-seed {first}: seeds {first}-{first + count - 1} overlap the run's own "
                          f"{own.start}-{own.stop - 1}; fresh seeds are seeds the run never trained")
    return source.replace(
        strategy="presets", baselines=placements, seeds=count, proxy=source.proxy.replace(seed=first),
        optuna=dataclasses.replace(source.optuna, storage=None),  # a presets run keeps no study of its own
        description=f"{store.name}'s baselines{''.join(f', {name}' for name in also)}, its {top} most accurate "
                    f"other placements and its answer, on seeds {first}-{first + count - 1}, which it never trained")


def run_placements(store: RunStore, top: int, taken: set[str]) -> list[str]:
    """A finished run's ``top`` most accurate placements whose spec keys are not in ``taken``, then
    its strategy's answer, as paths of its trial files; their keys join ``taken``."""
    if not store.exists():
        raise ConfigError(f"run {store.name}: no run folder at {store.path}")
    source = store.load_config()
    ranked = candidates(store.load_trials()[0], source.seeds)
    found = []
    for record in [r for r in ranked if r.spec.key() not in taken][:top] + _answer(store, ranked):
        if record.spec.key() not in taken:
            taken.add(record.spec.key())
            found.append(_relative(store.trial_path(record.number)))
    return found


def candidates(records: list[TrialRecord], seeds: int) -> list[TrialRecord]:
    """Hard placements measured with all ``seeds`` at the run's own budget, most accurate first,
    one per placement. Soft trainings and shortened budgets are other experiments."""
    whole = [r for r in records if r.state == "complete" and r.duplicate_of is None and r.top1 is not None
             and len(r.val_top1) == seeds and r.spec.soft is None
             and r.extra.get("key", r.spec.key()) == r.spec.key()]
    best: dict[str, TrialRecord] = {}
    for record in sorted(whole, key=lambda r: (-r.top1, r.number)):
        best.setdefault(record.spec.key(), record)
    return list(best.values())


def _answer(store: RunStore, ranked: list[TrialRecord]) -> list[TrialRecord]:
    """The candidate answer.yaml came from: the strategy's own step, confirmed even when it ranks
    below the top few, since it is what the strategy would have the user train."""
    path = store.path / "answer.yaml"
    if not path.exists():
        return []
    key = load_spec(path).key()
    return [r for r in ranked if r.spec.key() == key]


def _relative(path: Path) -> str:
    """As the search.yaml will show it: relative to where the command runs, when it is below."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)

