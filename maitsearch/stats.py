"""Small statistics for noisy proxy accuracies: seed noise, separation, rank agreement.

Plain Python on purpose: the numbers are a handful per placement, and every formula here is
checked against hand-worked values in ``tests/test_stats.py``.
"""

from __future__ import annotations

import math
import random
from typing import Mapping, Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); std is 0 for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std: no values")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def pooled_std(groups: Mapping[str, Sequence[float]]) -> float:
    """The seed noise shared by all groups: sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1))."""
    dof = sum(len(v) - 1 for v in groups.values() if len(v) > 1)
    if dof == 0:
        return float("nan")
    squares = sum((len(v) - 1) * mean_std(v)[1] ** 2 for v in groups.values() if len(v) > 1)
    return math.sqrt(squares / dof)


def separation(groups: Mapping[str, Sequence[float]]) -> float:
    """The largest gap between group means, in units of the pooled std."""
    means = [mean_std(v)[0] for v in groups.values()]
    noise = pooled_std(groups)
    gap = max(means) - min(means)
    if not noise or math.isnan(noise):
        return float("inf") if gap > 0 else float("nan")
    return gap / noise


def resolvable_gap(noise: float, seeds: int, z: float = 2.0, paired: bool = False) -> float:
    """The smallest difference between two placements' means over ``seeds`` seeds that stands
    ``z`` standard errors clear of the noise: z * noise * sqrt(2 / seeds) for independent runs,
    z * noise / sqrt(seeds) when ``noise`` is already the std of per-seed differences."""
    return z * noise * math.sqrt((1.0 if paired else 2.0) / seeds)


def paired_differences(values: Mapping[str, Sequence[float]], baseline: str) -> dict[str, list[float]]:
    """Per-seed differences from the baseline. Placements trained with the same seed share their
    initial weights and data order, so a seed's luck largely cancels in the difference."""
    base = values[baseline]
    return {name: [a - b for a, b in zip(v, base)] for name, v in values.items()
            if name != baseline and len(v) == len(base)}


def paired_noise(values: Mapping[str, Sequence[float]], baseline: str) -> float:
    """Pooled std of the per-seed differences from the baseline: the noise of a comparison."""
    return pooled_std(paired_differences(values, baseline))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists over the same items (ties handled)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("kendall_tau: needs two lists of the same length >= 2")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else float("nan")


def kendall_tau_interval(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for ``kendall_tau(a, b)``: the items (pairs of scores) are
    resampled with replacement ``resamples`` times; resamples whose tau is undefined (every item
    tied) are left out. Seeded, so a report says the same interval every time it is written."""
    rng = random.Random(seed)
    n, taus = len(a), []
    for _ in range(resamples):
        picked = [rng.randrange(n) for _ in range(n)]
        tau = kendall_tau([a[i] for i in picked], [b[i] for i in picked])
        if not math.isnan(tau):
            taus.append(tau)
    if not taus:
        return float("nan"), float("nan")
    taus.sort()
    low = taus[max(0, math.floor((1 - level) / 2 * len(taus)))]
    high = taus[min(len(taus) - 1, math.ceil((1 + level) / 2 * len(taus)) - 1)]
    return low, high


def format_mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` (just the mean for a single value, which has no spread to show; ``-``
    for no values, a trial that never finished)."""
    if not values:
        return "-"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"
