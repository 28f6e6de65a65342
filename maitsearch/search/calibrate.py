"""Does a proxy rank placements at all? Train the reference placements with several seeds (and
longer budgets) and compare the gaps between them with the seed noise.

The output, ``results/<run>/calibration.yaml``, holds per placement and budget the mean and std
of validation top-1, the pooled seed noise, the separation (largest gap between means over the
noise), the gap that the noise lets K seeds resolve, Kendall's tau between the rankings at the
shortest and the longest budget, the seconds per trial, and a one-line verdict.
``maitsearch run`` finds a calibration of its own proxy and uses its noise in the report.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from ..config import SearchConfig
from ..errors import ConfigError, SearchError
from ..runs import RunStore, TrialRecord, validate_run_name
from ..runs.report import write_report
from ..stats import kendall_tau, mean_std, paired_differences, paired_noise, pooled_std, resolvable_gap, separation
from .base import Proposal, Strategy
from .launch import RunSummary, config_digest, run_search

REFERENCES = ("none", "sch1", "sch2", "all", "random")


class CalibrationPlan(Strategy):
    """Every reference placement at every budget, all at once (they are independent)."""

    name = None  # a plan, not a search strategy: not offered by ``maitsearch run``

    def __init__(self, config: SearchConfig, budgets: tuple[int, ...] = (1,), placements=REFERENCES):
        super().__init__(config)
        self.budgets, self.placements = tuple(budgets), tuple(placements)
        self.asked = False

    def ask(self) -> list[Proposal]:
        if self.asked:
            return []
        self.asked = True
        proposals = []
        for budget in self.budgets:
            changes = {} if budget == 1 else {"epochs": self.config.proxy.epochs * budget}
            for name in self.placements:
                proposals.append(Proposal(self.spec_of(name), f"{name}@{budget}x",
                                          proxy_changes=changes))
        return proposals

    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        return None  # calibration has no answer placement


def budget_stats(groups: dict[str, list[float]], seeds: int) -> dict:
    """Noise, separation and paired gaps of the placements trained at one budget."""
    noise = pooled_std(groups)
    means = {name: mean_std(v)[0] for name, v in groups.items()}
    paired = paired_noise(groups, "none") if "none" in groups else float("nan")
    differences = paired_differences(groups, "none") if "none" in groups else {}
    return {
        "noise": noise, "separation": separation(groups),
        "largest_gap": max(means.values()) - min(means.values()),
        "resolvable_gap": resolvable_gap(noise, seeds) if noise == noise else None,
        # the same seeds share initial weights and data order: differences from "none" per seed
        "paired_noise": paired if paired == paired else None,
        "paired_gaps": {n: mean_std(d)[0] for n, d in differences.items()},
        "paired_resolvable_gap": resolvable_gap(paired, seeds, paired=True) if paired == paired else None,
    }


def analyse(records: list[TrialRecord], config: SearchConfig, budgets: tuple[int, ...]) -> dict:
    """The calibration numbers from the trained records (see the module docstring). The
    top-level numbers are those of the proxy's own budget (1x); ``by_budget`` has every budget,
    so a run of the same proxy at a longer budget finds its noise too."""
    by_budget: dict[int, dict[str, list[float]]] = {b: {} for b in budgets}
    seconds: dict[int, list[float]] = {b: [] for b in budgets}
    for record in records:
        name, _, budget = record.step.rpartition("@")
        budget = int(budget.rstrip("x"))
        if record.state == "complete" and record.val_top1 and budget in by_budget:
            by_budget[budget][name] = list(record.val_top1)
            trained = len(record.seeds) - record.cached  # cached seeds cost this run nothing
            if trained > 0 and record.seconds:
                seconds[budget].append(record.seconds / trained)
    short, long = budgets[0], budgets[-1]
    if len(by_budget[short]) < 2:
        raise SearchError("calibrate: fewer than two reference placements finished; nothing to compare")
    table = {}
    for budget, groups in by_budget.items():
        for name, values in groups.items():
            mean, std = mean_std(values)
            table.setdefault(name, {})[f"{budget}x"] = {"mean": mean, "std": std, "values": list(values)}
    tau = None
    if long != short and by_budget[long]:
        common = [n for n in by_budget[short] if n in by_budget[long]]
        if len(common) >= 2:
            tau = kendall_tau([mean_std(by_budget[short][n])[0] for n in common],
                              [mean_std(by_budget[long][n])[0] for n in common])
            tau = None if tau != tau else tau  # all tied: no ranking to compare
    per_budget = {}
    for budget, groups in by_budget.items():
        if len(groups) >= 2:
            stats = budget_stats(groups, config.seeds)
            stats["epochs"] = int(round(config.proxy.epochs * budget))
            stats["seconds_per_trial"] = sum(seconds[budget]) / len(seconds[budget]) if seconds[budget] else None
            stats["verdict"] = verdict(stats, config.seeds, tau)
            per_budget[f"{budget}x"] = stats
    at_own_budget = {name: r for r in records if r.state == "complete"
                     for name, _, budget in [r.step.rpartition("@")] if budget == f"{short}x"}
    warnings = []
    if only_counts_masks(by_budget[short], {name: r.spec.num_masked for name, r in at_own_budget.items()}):
        warnings.append("a search on this proxy only counts masks: accuracy grows with the number of masked "
                        "heads (none, sch1, sch2, all in order) and masking every head is the most accurate")
    return {"layers": config.layers, "heads": config.heads, "proxy": config.proxy.to_dict(),
            "seeds": [config.proxy.seed + i for i in range(config.seeds)], "budgets": list(budgets),
            "metric": "val_top1", "placements": table, "kendall_tau": tau, **per_budget[f"{short}x"],
            "by_budget": per_budget, "mechanism": mechanism(at_own_budget), "warnings": warnings}


def only_counts_masks(groups: dict[str, list[float]], masked: dict[str, int]) -> bool:
    """True when, among the locality placements none, sch1, sch2 and all, accuracy never falls as
    masked heads are added and ``all`` is the most accurate placement of the calibration: then
    any search's best answer is "mask more", and a search has nothing to find."""
    ladder = [name for name in ("none", "sch1", "sch2", "all") if name in groups and name in masked]
    if len(ladder) < 3 or "all" not in ladder:
        return False
    means = {name: mean_std(values)[0] for name, values in groups.items()}
    ladder.sort(key=lambda name: masked[name])
    rising = all(means[a] <= means[b] for a, b in zip(ladder, ladder[1:]))
    return rising and means["all"] >= max(means.values())


def _thirds(values: list[float]) -> tuple[float, float]:
    third = max(1, len(values) // 3)
    return sum(values[:third]) / third, sum(values[-third:]) / third


def mechanism(records: dict[str, TrialRecord]) -> dict:
    """Where the proxy's attention is local, in normalized ALS (0 uniform, 1 all in the window):
    per layer, the unmasked baseline's heads (mean over heads) and Sch.1's masked head 0; the
    first and last thirds of the layers; and whether the baseline is more local early than late
    beyond seed noise (per-seed differences, two standard errors). The paper's strategies read
    exactly this structure: on a proxy without it they read noise."""
    out: dict = {}
    none, sch1 = records.get("none"), records.get("sch1")
    seeds = none.normalized_als_seeds() if none is not None else None
    if seeds:
        by_seed = [[sum(row) / len(row) for row in seed] for seed in seeds]  # (seeds, L)
        by_layer = [sum(seed[l] for seed in by_seed) / len(by_seed) for l in range(len(by_seed[0]))]
        early_minus_late = [_thirds(seed)[0] - _thirds(seed)[1] for seed in by_seed]
        mean, std = mean_std(early_minus_late)
        first, last = _thirds(by_layer)
        out["unmasked"] = {"by_layer": by_layer, "first_third": first, "last_third": last,
                           "early_minus_late": mean, "early_minus_late_std": std,
                           "more_local_early": len(by_seed) > 1 and mean > 2 * std / len(by_seed) ** 0.5}
    als = sch1.normalized_als() if sch1 is not None else None
    if als:
        head0 = [row[0] for row in als]
        first, last = _thirds(head0)
        out["sch1_masked_head"] = {"by_layer": head0, "first_third": first, "last_third": last,
                                   "max": max(head0), "reaches_half_early": first >= 0.5}
    return out


def verdict(stats: dict, seeds: int, tau: float | None) -> str:
    """One line: can this proxy rank placements, and of what size? Judged on paired differences
    (how searches compare placements: same seeds), with the budgets' rank agreement."""
    resolvable = stats.get("paired_resolvable_gap")
    if resolvable is None:  # no unmasked reference: fall back to the unpaired noise
        resolvable = stats["resolvable_gap"] if stats["resolvable_gap"] is not None else float("nan")
    resolvable *= 100
    gaps = stats.get("paired_gaps") or {}
    gap = max((abs(g) for g in gaps.values()), default=stats["largest_gap"]) * 100
    stable = "" if tau is None else (f"; rankings agree across budgets (tau {tau:+.2f})" if tau >= 0.6
                                     else f"; rankings change with the budget (tau {tau:+.2f})")
    if resolvable == resolvable and gap > resolvable and (tau is None or tau >= 0.6):
        return (f"this proxy can rank placements of about {resolvable:.1f} points with {seeds} paired seeds "
                f"(the largest gap to the unmasked baseline is {gap:.1f} points){stable}")
    return (f"this proxy cannot rank placements of about {max(gap, 0.1):.1f} points: with {seeds} paired seeds only "
            f"gaps above {resolvable:.1f} points stand clear of seed noise{stable}")


@dataclasses.dataclass
class Calibration:
    summary: RunSummary
    result: dict
    path: Path


def calibrate(config: SearchConfig, *, budgets: tuple[int, ...] = (1,), results_root: str | Path = "results",
              name: str | None = None, data=None, on_event=None, fidelity: bool = False) -> Calibration:
    """Train the references and analyse them (see the module docstring). With ``fidelity``, also
    measure how well a supernet of this proxy ranks placements (``supernet_fidelity``)."""
    budgets = tuple(sorted(set(int(b) for b in budgets)))
    if not budgets or budgets[0] < 1:
        raise ConfigError("--budgets: positive multiples of the epochs, such as 1,3")
    searched = config
    config = config.replace(strategy="calibrate", baselines=[])
    name = name or f"calibrate-{Path(config.proxy.data).name}-l{config.layers}h{config.heads}-{config_digest(config)}"
    if fidelity:  # before anything trains: the supernet run's name must be one too
        validate_run_name(f"{name}-supernet")
    plan = CalibrationPlan(config, budgets)
    summary = run_search(config, results_root=results_root, name=name, strategy=plan, data=data, on_event=on_event)
    result = analyse(summary.records, config, budgets)
    if fidelity:
        result["fidelity"] = supernet_fidelity(searched, results_root, f"{name}-supernet", data, on_event)
    store = RunStore(results_root, name)
    path = store.write_yaml("calibration.yaml", result)
    write_report(store, config, summary)  # again, now with the calibration in it
    return Calibration(summary, result, path)


def supernet_fidelity(config: SearchConfig, results_root: str | Path, name: str, data=None, on_event=None) -> dict:
    """Kendall's tau between a supernet's scores and stand-alone means (the run's seeds) over the
    fidelity placements, from a supernet run of its own (``name``, beside the calibration) that
    trains the supernets with ``config.supernet``'s settings, scores the placements, trains
    those no run beside it has, and searches nothing. The calibration's own trials are found
    there, so only the spread beyond the references trains anew (once per machine: the cache)."""
    summary = run_search(fidelity_config(config), results_root=results_root, name=name, data=data, on_event=on_event)
    store = RunStore(results_root, name)
    if not (store.path / "supernet.yaml").exists():
        raise SearchError(f"calibrate --fidelity: the supernet run {name} ended without scores "
                          f"({'; '.join(summary.notes) or 'see its report'})")
    found = yaml.safe_load((store.path / "supernet.yaml").read_text(encoding="utf-8"))
    return {**found["fidelity"], "run": name,
            "supernet_seconds": sum(trained["seconds"] for trained in found["supernets"]),
            "seconds_each": found["evaluations"]["seconds_each"]}


def fidelity_config(config: SearchConfig) -> SearchConfig:
    """The supernet run a calibration's fidelity section comes from: no search, no baselines."""
    settings = dataclasses.replace(config.supernet, evaluations=0, top=0, fidelity="train")
    return config.replace(strategy="supernet", baselines=[], supernet=settings)
