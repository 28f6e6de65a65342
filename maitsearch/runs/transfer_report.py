"""A transfer study's numbers and report: does the proxy rank placements as the target does?

The same placements trained on a proxy and on a target, with the same seeds, give two rankings
of per-placement means. ``analyse_transfer`` measures how well they agree (Kendall's tau-b and
Spearman's rho, each with a bootstrap interval over seeds) and what trusting the proxy would
cost on the target: the regret, the target's accuracy of its own best placement minus that of
the proxy's pick, judged against the target's paired seed noise as run reports judge a gain
(``stats.paired_noise``, ``stats.resolvable_gap``).

A transfer folder (``search/transfer.py`` makes it) holds two ordinary presets runs and this
module's files:

    results/<name>/
      proxy/, target/    presets runs of the same placements and seeds (resume, cache, report as runs)
      transfer.yaml      the numbers below, the command, and both sides' settings
      report.md          the verdict, the rankings side by side, the scatter plot
      scatter.png        proxy against target accuracy, seed error bars, each point labelled
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from ..config import SearchConfig, config_from_dict, config_identity
from ..errors import ConfigError
from ..stats import (average_ranks, format_mean_std, kendall_tau, mean_std, paired_noise, resolvable_gap,
                     seed_bootstrap, spearman_rho)

TRANSFER_FILE = "transfer.yaml"
SIDES = ("proxy", "target")
# Fixed, so the same trials give the same report; 2000 resamples keep the interval's ends stable
# to about 0.01 and cost well under a second for a handful of placements.
BOOTSTRAP = {"resamples": 2000, "seed": 0, "level": 0.95}
# What makes a proxy the same proxy: its shape, window, semantics and training settings. Which
# placements a run trained, how many seeds, with which strategy and where, do not.
PROXY_SETTINGS = ("layers", "heads", "window", "semantics", "proxy")
NOT_THE_PROXY = ("seed", "device")


def proxy_identity(config: SearchConfig) -> str:
    """The digest of a config's proxy (``config_identity``, as run names and resumes compare
    configs), without its strategy, placements, seeds or execution settings."""
    return config_identity(config, leave_out=[k for k in config.to_dict() if k not in PROXY_SETTINGS],
                           leave_out_proxy=NOT_THE_PROXY)


def analyse_transfer(placements: list[str], proxy: dict[str, list[float]], target: dict[str, list[float]],
                     *, bootstrap: dict | None = None) -> dict:
    """Rank agreement, the proxy's pick on the target, the regret and a verdict.

    ``proxy`` and ``target`` map each placement to its validation top-1 per seed (fractions),
    the same seeds in the same order on both sides. Ties (equal means) are ranked as
    scipy's tau-b and rho rank them; among tied most accurate placements, the first listed is
    the pick (or the best)."""
    settings = {**BOOTSTRAP, **(bootstrap or {})}
    names = list(dict.fromkeys(placements))
    if len(names) < 2:
        raise ConfigError(f"transfer: {len(names)} placement(s); rankings need at least 2")
    for side, values in (("proxy", proxy), ("target", target)):
        missing = [n for n in names if not values.get(n)]
        if missing:
            raise ConfigError(f"transfer: no {side} result for {', '.join(missing)}")
    counts = {len(side[n]) for side in (proxy, target) for n in names}
    if len(counts) != 1:
        raise ConfigError(f"transfer: placements have {sorted(counts)} seeds; both sides need the same seeds "
                          "for every placement")
    seeds = counts.pop()
    if seeds < 2:
        raise ConfigError("transfer: one seed per placement leaves no seed noise to judge the regret by; "
                          "use 2 or more (--seeds)")
    a, b = [proxy[n] for n in names], [target[n] for n in names]
    proxy_means, target_means = [mean_std(v)[0] for v in a], [mean_std(v)[0] for v in b]
    tau, rho = (_defined(f(proxy_means, target_means)) for f in (kendall_tau, spearman_rho))
    intervals = {name: seed_bootstrap(a, b, f, resamples=settings["resamples"], seed=settings["seed"],
                                      level=settings["level"])
                 for name, f in (("kendall_tau", kendall_tau), ("spearman_rho", spearman_rho))}
    pick = names[proxy_means.index(max(proxy_means))]
    best = names[target_means.index(max(target_means))]
    on_target = dict(zip(names, target_means))
    regret = on_target[best] - on_target[pick]
    pick_is_best = regret == 0
    # the target's own noise of this one comparison: the std of its per-seed differences
    noise = 0.0 if pick_is_best else paired_noise({best: target[best], pick: target[pick]}, best)
    gap = resolvable_gap(noise, seeds, paired=True)
    within = pick_is_best or regret < gap
    rows = []
    for name, pa, pb, ra, rb in zip(names, a, b, average_ranks([-m for m in proxy_means]),
                                    average_ranks([-m for m in target_means])):
        rows.append({"placement": name,
                     "proxy": {"mean": mean_std(pa)[0], "std": mean_std(pa)[1], "rank": ra, "values": list(pa)},
                     "target": {"mean": mean_std(pb)[0], "std": mean_std(pb)[1], "rank": rb, "values": list(pb)}})
    return {"seeds": seeds, "placements": rows, "kendall_tau": tau, "spearman_rho": rho,
            "kendall_tau_interval": _pair(intervals["kendall_tau"]),
            "spearman_rho_interval": _pair(intervals["spearman_rho"]),
            "bootstrap": {**settings, "over": "seeds, the same resampled seeds on both sides"},
            "proxy_pick": pick, "target_best": best, "pick_is_best": pick_is_best,
            "regret": regret, "target_noise": noise, "resolvable_gap": gap, "within_noise": within,
            "verdict": verdict(regret, gap, pick_is_best)}


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def _pair(interval) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def verdict(regret: float, gap: float, pick_is_best: bool) -> str:
    """One line: is the proxy's pick as good as the target's best, as far as the target's seed
    noise can tell? Within when the regret is below the resolvable gap (``abs(gain) < gap``, as
    run reports judge a gain)."""
    head = "the proxy's pick is within the target's noise of its best"
    if pick_is_best:
        return f"{head} (it is the target's best)"
    if regret < gap:
        return f"{head} ({regret * 100:.2f} points below it, resolvable gap {gap * 100:.2f})"
    return (f"the proxy's pick is {regret * 100:.2f} points below the target's best, beyond its noise "
            f"(resolvable gap {gap * 100:.2f})")


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def with_interval(result: dict, name: str) -> str:
    """``+0.62 [+0.14, +1.00]``: a statistic and its bootstrap interval; ``undefined`` where one
    side's means all tie (no ranking to compare)."""
    interval = result.get(f"{name}_interval")
    shown = "" if interval is None else f" [{_signed(interval[0])}, {_signed(interval[1])}]"
    value = result.get(name)
    return ("undefined (a side's means all tie)" if value is None else _signed(value)) + shown


def summary_lines(result: dict) -> list[str]:
    """The study in a few sentences: rank agreement, the pick, the regret and the verdict."""
    rows = {row["placement"]: row for row in result["placements"]}
    pick, best = rows[result["proxy_pick"]], rows[result["target_best"]]
    boot = result["bootstrap"]
    level = f"{boot['level']:.0%} bootstrap interval over {result['seeds']} paired seeds, {boot['resamples']} resamples"
    lines = [f"Kendall's tau-b between the proxy's and the target's rankings: {with_interval(result, 'kendall_tau')} "
             f"({level}); Spearman's rho: {with_interval(result, 'spearman_rho')}.",
             f"The proxy's pick is {pick['placement']} ({format_mean_std(pick['proxy']['values'])} on the proxy, "
             f"{format_mean_std(pick['target']['values'])} on the target); the target's best is {best['placement']} "
             f"({format_mean_std(best['target']['values'])})"
             + ("; they are the same placement." if result["pick_is_best"] else "; they differ.")]
    if not result["pick_is_best"]:
        lines.append(f"Regret: {result['regret'] * 100:.2f} points on the target; the target's paired noise of "
                     f"this comparison (std of its per-seed differences) is {result['target_noise'] * 100:.2f} "
                     f"points, so with {result['seeds']} seeds gaps above {result['resolvable_gap'] * 100:.2f} "
                     f"points stand clear of it.")
    return lines


def write_transfer_files(folder: Path, result: dict) -> Path:
    """transfer.yaml, scatter.png and report.md of a finished study; returns report.md's path."""
    from .. import atomic

    folder = Path(folder)
    atomic.write_text(folder / TRANSFER_FILE, yaml.safe_dump(result, sort_keys=False))
    draw_scatter(folder, result)
    return atomic.write_text(folder / "report.md", "\n".join(report_lines(result)))


def draw_scatter(folder: Path, result: dict) -> Path:
    """scatter.png: each placement's proxy accuracy against its target accuracy, seed error bars."""
    from . import plots

    rows = result["placements"]
    return plots.accuracy_scatter([r["proxy"]["mean"] for r in rows], [r["proxy"]["std"] for r in rows],
                                  [r["target"]["mean"] for r in rows], [r["target"]["std"] for r in rows],
                                  [r["placement"] for r in rows], Path(folder) / "scatter.png",
                                  f"{result['name']}: validation top-1, mean ± std over {result['seeds']} seeds",
                                  tuple(f"{side}: {result[side]['source']}: validation top-1 (%)" for side in SIDES),
                                  pick=result["proxy_pick"], best=result["target_best"])


def placements_frame(result: dict):
    """One row per placement of a study: its accuracy (fractions) and rank on each side."""
    import pandas as pd

    rows = [{"placement": row["placement"], "compact": row.get("compact"), "masked": row.get("masked"),
             **{column: row[side][key] for side in SIDES
                for column, key in ((f"{side}_top1", "mean"), (f"{side}_top1_std", "std"), (f"{side}_rank", "rank"))}}
            for row in result["placements"]]
    return pd.DataFrame(rows)


def report_lines(result: dict) -> list[str]:
    sides = {side: result[side] for side in SIDES}
    lines = [f"# {result['name']}: does the proxy's ranking carry to the target?", ""]
    for side, info in sides.items():
        lines.append(f"- {side}: `{info['source']}` ({info['about']}); its run: [{side}/]({side}/report.md)")
    lines += [f"- placements: {len(result['placements'])}, each on seeds {_seed_range(result)} on both sides",
              f"- reproduce: `{result['command']}`", "", f"**Verdict: {result['verdict']}.**", ""]
    lines += [f"- {line}" for line in summary_lines(result)] + [""]
    lines += ["Validation top-1 (%), mean ± std over seeds; rank 1 is the most accurate (ties share a rank).", "",
              "| placement | compact | masked heads | proxy | proxy rank | target | target rank |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for row in result["placements"]:
        marks = (" (the proxy's pick)" if row["placement"] == result["proxy_pick"] else "") + (
            " (the target's best)" if row["placement"] == result["target_best"] else "")
        lines.append(f"| {row['placement']}{marks} | `{row.get('compact', '')}` | {row.get('masked', '-')} | "
                     f"{format_mean_std(row['proxy']['values'])} | {row['proxy']['rank']:g} | "
                     f"{format_mean_std(row['target']['values'])} | {row['target']['rank']:g} |")
    lines += ["", "Proxy against target accuracy (error bars: std over seeds):", "", "![scatter](scatter.png)", ""]
    return lines


def _seed_range(result: dict) -> str:
    seeds = result.get("seed_list") or []
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else ", ".join(map(str, seeds)) or "?"


# ---- reading studies back ---------------------------------------------------------------------
def load_transfer(folder: str | Path) -> dict | None:
    """A transfer folder's transfer.yaml, or None where there is none or it does not parse."""
    path = Path(folder) / TRANSFER_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def find_transfers(results_root: str | Path, config: SearchConfig) -> list[tuple[Path, dict]]:
    """The transfer studies in ``results_root`` whose proxy side trained ``config``'s proxy
    (its shape and training settings; any strategy, placements and seeds), as (folder, study)."""
    wanted = proxy_identity(config)
    found = []
    for path in sorted(Path(results_root).glob(f"*/{TRANSFER_FILE}")):
        study = load_transfer(path.parent)
        side = path.parent / "proxy" / "search.yaml"
        if study is None or not side.is_file():
            continue
        try:
            proxy = config_from_dict(yaml.safe_load(side.read_text(encoding="utf-8")) or {}, where=str(side))
        except (OSError, yaml.YAMLError, ConfigError):
            continue
        if proxy_identity(proxy) == wanted:
            found.append((path.parent, study))
    return found


def transfer_lines(run_folder: Path, config: SearchConfig) -> list[str]:
    """What a run's report says about its proxy and transfer studies: which studies checked it
    against a target, with their tau and verdict; that none has; or, for a side of a study,
    which study it belongs to."""
    run_folder = Path(run_folder)
    parent = run_folder.parent
    own = load_transfer(parent) if run_folder.name in SIDES else None
    if own is not None:
        return [f"This run is the {run_folder.name} side of the transfer study {own.get('name', parent.name)} "
                f"([report](../report.md)): {own.get('verdict', '')}."]
    found = find_transfers(parent, config)
    if not found:
        return [f"This proxy has not been checked against a target: no transfer study in {_shown(parent)} trained "
                "it (`maitsearch transfer --proxy CONFIG --target CONFIG` measures whether its ranking of "
                "placements carries to a bigger or real task)."]
    lines = [f"This proxy has been checked against {len(found)} target(s):"]
    for folder, study in found:
        link = os.path.relpath(folder / "report.md", run_folder)
        target = (study.get("target") or {}).get("source", "?")
        lines.append(f"- [{folder.name}]({link}), target `{target}`: Kendall's tau {with_interval(study, 'kendall_tau')}; "
                     f"{study.get('verdict', '')}.")
    return lines


def _shown(path: Path) -> str:
    return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
