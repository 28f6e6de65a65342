"""Ranking fidelity of a supernet: does it order placements as training each from scratch does?

Kendall's tau between the supernet's scores and stand-alone means (the run's seeds, validation
top-1) over placements spread over the space, with a bootstrap interval over the placements.
Stand-alone means are looked up, never guessed: in the records a run hands over, in the run
folders beside it that trained the same proxy (committed runs such as results/default24, read
with ``load_run``), and in the trial cache. What none of them holds is missing, and the supernet
strategy trains it only when asked (``supernet.fidelity: train``).
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

from ..config import ProxyConfig, SearchConfig, config_from_dict
from ..errors import ConfigError
from ..runs import TrialRecord
from ..runs.cache import CorruptEntry, TrialCache, cache_key
from ..runs.reading import load_run
from ..spec import MaskSpec, named_preset
from ..stats import kendall_tau, kendall_tau_interval, mean_std

MIN_PLACEMENTS = 5  # fewer cannot give tau an interval narrower than the whole range


def spread_placements(config: SearchConfig) -> dict[str, MaskSpec]:
    """Twelve placements (fewer where a shallow model makes some equal) from none to all: the
    presets, every head or one head in one part of the stack, and three seeded random count
    placements at a quarter, half and three quarters of the heads."""
    layers, heads = config.layers, config.heads
    third, half = max(1, round(layers / 3)), max(1, layers // 2)
    counts = {"all-first-third": [heads] * third + [0] * (layers - third),
              "all-first-half": [heads] * half + [0] * (layers - half),
              "all-last-half": [0] * (layers - half) + [heads] * half,
              "one-first-half": [1] * half + [0] * (layers - half),
              "one-last-half": [0] * (layers - half) + [1] * half}
    for share in (25, 50, 75):
        rng = random.Random(f"fidelity:{share}")
        counts[f"random-{share}"] = [sum(rng.random() < share / 100 for _ in range(heads)) for _ in range(layers)]
    shape = dict(window=tuple(config.window), semantics=config.semantics)
    placements = {name: named_preset(name, layers, heads, **shape) for name in ("none", "sch1", "sch2", "all")}
    placements.update({name: MaskSpec.from_counts(c, heads, **shape).with_meta(preset=name)
                       for name, c in counts.items()})
    return unique(placements)


def unique(placements: dict[str, MaskSpec]) -> dict[str, MaskSpec]:
    """The first name of each experiment (canonical placement, window, semantics)."""
    seen, out = set(), {}
    for name, spec in placements.items():
        if spec.key() not in seen:
            seen.add(spec.key())
            out[name] = spec
    return out


def _comparable(proxy: ProxyConfig) -> ProxyConfig:
    return dataclasses.replace(proxy, seed=0, device="auto")


class StandaloneMeans:
    """Per-seed stand-alone validation top-1 of placements on ``config``'s proxy and seeds, from
    the run folders under ``results_root`` (but ``own``) that trained the same proxy, and from the
    trial cache. A placement counts only with every one of the run's seeds, at the run's budget."""

    def __init__(self, config: SearchConfig, results_root: str | Path, cache: TrialCache, own: str | None = None):
        self.config, self.cache = config, cache
        self.seeds = [config.proxy.seed + i for i in range(config.seeds)]
        self.by_key: dict[str, dict[int, float]] = {}  # placement key -> seed -> top-1
        self.found: dict[str, MaskSpec] = {}  # hard placements the runs beside hold, by name
        root = Path(results_root)
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if folder.name != own and (folder / "search.yaml").is_file():
                self._read_run(folder)

    def _read_run(self, folder: Path) -> None:
        run = load_run(folder)
        try:
            config = config_from_dict(run.config, where=str(folder / "search.yaml"))
        except (ConfigError, TypeError):
            return  # a config this version cannot read: not this proxy's numbers
        if _comparable(config.proxy) != _comparable(self.config.proxy):
            return
        for record in run.records:
            if usable(record):
                self.add(record)
                name = record.spec.meta.get("preset") or f"{run.name}/trial-{record.number}"
                self.found.setdefault(name, record.spec)

    def add(self, record: TrialRecord) -> None:
        """A record trained at the run's budget; its seeds join those already known."""
        if usable(record):
            self.by_key.setdefault(record.spec.key(), {}).update(zip(record.seeds, record.val_top1))

    def values(self, spec: MaskSpec) -> list[float] | None:
        """The run's seeds' stand-alone top-1 of ``spec``, or None when any seed is missing."""
        known = dict(self.by_key.get(spec.key(), {}))
        for seed in (s for s in self.seeds if s not in known):
            top1 = self._cached(spec, seed)
            if top1 is None:
                return None
            known[seed] = top1
        return [known[seed] for seed in self.seeds]

    def _cached(self, spec: MaskSpec, seed: int) -> float | None:
        proxy = self.config.proxy.replace(seed=seed)
        for threads in range(1, (os.cpu_count() or 1) + 1):  # the workers' thread count is part of the key
            try:
                result = self.cache.get(cache_key(spec, proxy, threads=threads))
            except CorruptEntry:
                result = None
            if result is not None and result.val_top1 is not None:
                return result.val_top1
        return None


def usable(record: TrialRecord) -> bool:
    """A finished hard placement at the run's own budget (no proxy change)."""
    return (record.state == "complete" and bool(record.val_top1) and not record.spec.is_soft
            and record.spec.pattern == "window" and record.extra.get("key", record.spec.key()) == record.spec.key())


def rank_fidelity(rows: list[dict], *, resamples: int = 2000) -> dict:
    """Kendall's tau between ``score`` and the mean of ``standalone`` over the rows that have
    both, with a 95% percentile bootstrap interval over those placements. Rows are dicts with
    ``name``, ``placement``, ``score`` (a fraction) and ``standalone`` (per-seed values, or None)."""
    usable_rows = [row for row in rows if row.get("standalone") and row.get("score") is not None]
    out = {"placements": len(usable_rows), "missing": [row["name"] for row in rows if not row.get("standalone")],
           "tau": None, "interval": None,
           "rows": [{**row, "standalone_mean": mean_std(row["standalone"])[0] if row.get("standalone") else None}
                    for row in rows]}
    if len(usable_rows) >= MIN_PLACEMENTS:
        scores = [row["score"] for row in usable_rows]
        means = [mean_std(row["standalone"])[0] for row in usable_rows]
        tau = kendall_tau(scores, means)
        if tau == tau:  # all tied: no order to compare
            low, high = kendall_tau_interval(scores, means, resamples=resamples)
            out.update(tau=tau, interval=[low, high])
    return out
