"""Small statistics for noisy proxy accuracies: seed noise, separation, rank agreement and its
bootstrap over seeds.

Plain Python on purpose: the numbers are a handful per placement, and every formula here is
checked against hand-worked values in ``tests/test_stats.py`` and ``tests/test_transfer.py``.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Mapping, Sequence


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


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, lowest first; tied values share the mean of the ranks they span (scipy's
    ``rankdata`` with ``method='average'``)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho between two score lists over the same items: Pearson's correlation of
    their average ranks (ties handled as ``scipy.stats.spearmanr``); NaN when a side is all tied."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman_rho: needs two lists of the same length >= 2")
    ra, rb = average_ranks(a), average_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cross = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    spread = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cross / spread if spread else float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile: no values")
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def seed_bootstrap(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                   statistic: Callable[[list[float], list[float]], float], *, resamples: int = 2000,
                   seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of ``statistic(means of a, means of b)`` under resampled seeds.

    ``a`` and ``b`` hold, per item (placement), one value per seed, the same seeds on both sides.
    Each resample draws seed indices with replacement and uses that one draw for every item on
    both sides, so what a seed shares across placements stays paired. A resample whose statistic
    is undefined (NaN: a side all tied) is left out; None when every one is. The generator is
    seeded: the same numbers give the same interval."""
    seeds = {len(values) for values in [*a, *b]}
    if len(seeds) != 1 or len(a) != len(b):
        raise ValueError("seed_bootstrap: every item needs the same number of seeds on both sides")
    count = seeds.pop()
    rng = random.Random(seed)
    found = []
    for _ in range(resamples):
        draw = [int(rng.random() * count) for _ in range(count)]
        means_a = [sum(values[i] for i in draw) / count for values in a]
        means_b = [sum(values[i] for i in draw) / count for values in b]
        value = statistic(means_a, means_b)
        if not math.isnan(value):
            found.append(value)
    if not found:
        return None
    tail = (1 - level) / 2
    return quantile(found, tail), quantile(found, 1 - tail)


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
    tail = (1 - level) / 2
    return quantile(taus, tail), quantile(taus, 1 - tail)


def format_mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` (just the mean for a single value, which has no spread to show; ``-``
    for no values, a trial that never finished)."""
    if not values:
        return "-"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"
