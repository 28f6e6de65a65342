"""report.md and figures of a run: what was run, the trials, and best against the baseline."""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from ..config import SearchConfig
from ..stats import format_mean_std, mean_std, resolvable_gap
from .folder import RunStore
from .record import TrialRecord


def find_calibration(results_root: Path, config: SearchConfig) -> dict | None:
    """A calibration of the same proxy (any seed) and shape, at the budget whose epochs equal
    this run's: its numbers for that budget, with its path."""
    ignore = ("seed", "device", "epochs")
    wanted = {k: v for k, v in config.proxy.to_dict().items() if k not in ignore}
    for path in sorted(Path(results_root).glob("*/calibration.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        proxy = {k: v for k, v in (data.get("proxy") or {}).items() if k not in ignore}
        if proxy != wanted or (data.get("layers"), data.get("heads")) != (config.layers, config.heads):
            continue
        for budget, stats in (data.get("by_budget") or {}).items():
            if stats.get("epochs") == config.proxy.epochs:
                return {**data, **stats, "budget": budget, "path": str(path)}
    return None


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to where they are, when it is below."""
    return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)


def reproduce_command(store: RunStore, config: SearchConfig) -> str:
    """The command that re-runs this run folder as it is (it resumes when the folder exists)."""
    where = f"--config {_shown(store.path / 'search.yaml')} --name {store.name} --results {_shown(store.path.parent)}"
    if config.strategy == "calibrate":
        calibration = store.path / "calibration.yaml"
        budgets = yaml.safe_load(calibration.read_text(encoding="utf-8"))["budgets"] if calibration.exists() else [1]
        return f"maitsearch calibrate {where} --budgets {','.join(map(str, budgets))}"
    return f"maitsearch run {where}"


def baseline_of(records: list[TrialRecord]) -> TrialRecord | None:
    """The unmasked placement's record (trained as a baseline, or by a strategy)."""
    candidates = [r for r in records if r.state == "complete" and r.spec.num_masked == 0 and not r.spec.is_soft]
    return min(candidates, key=lambda r: r.number, default=None)


def comparison_line(best: TrialRecord, baseline: TrialRecord, calibration: dict | None) -> str:
    """Best against the unmasked baseline, judged on per-seed differences (the same seeds share
    initial weights and data order), with the calibration's paired noise when there is one."""
    gain = best.top1 - baseline.top1
    seeds = min(len(best.val_top1), len(baseline.val_top1))
    same_seeds = best.seeds == baseline.seeds and seeds >= 1
    if calibration and calibration.get("paired_noise") is not None:
        noise, source = float(calibration["paired_noise"]), f"the calibration in {_shown(Path(calibration['path']))}"
    elif same_seeds and seeds >= 2:
        noise = mean_std([a - b for a, b in zip(best.val_top1, baseline.val_top1)])[1]
        source = "this run's paired seeds"
    else:
        noise, source = float("nan"), "nowhere (one seed and no calibration)"
    gap = resolvable_gap(noise, max(seeds, 1), paired=True)
    if math.isnan(gap):
        verdict = "with one seed and no calibration, its noise is unknown"
    elif abs(gain) < gap:
        verdict = "within the measured seed noise"
    else:
        verdict = ("a gain" if gain > 0 else "a loss") + " beyond the measured seed noise"
    detail = "" if math.isnan(gap) else f" (resolvable gap {gap * 100:.2f} points, noise from {source})"
    return (f"best (trial {best.number}) {format_mean_std(best.val_top1)} vs unmasked baseline "
            f"(trial {baseline.number}) {format_mean_std(baseline.val_top1)} validation top-1: {gain * 100:+.2f} "
            f"points over {seeds} paired seed(s), {verdict}{detail}.")


def _points(fraction) -> str:
    return "-" if fraction is None else f"{fraction * 100:.2f}"


def calibration_section(result: dict) -> list[str]:
    budgets = [f"{b}x" for b in result["budgets"]]
    by_budget = result.get("by_budget") or {}
    lines = ["## Calibration", "",
             "| placement | " + " | ".join(f"val top-1 (%) at {by_budget.get(b, {}).get('epochs', b)} epochs"
                                         for b in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for name, cells in result["placements"].items():
        row = [f"{cells[b]['mean'] * 100:.2f} ± {cells[b]['std'] * 100:.2f}" if b in cells else "-" for b in budgets]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    tau = result.get("kendall_tau")
    lines += ["", f"Kendall tau between the rankings at the shortest and the longest budget: "
                  f"{'-' if tau is None else f'{tau:+.2f}'}.", ""]
    for budget in budgets:
        stats = by_budget.get(budget)
        if not stats:
            continue
        gaps = ", ".join(f"{n} {g * 100:+.2f}" for n, g in stats["paired_gaps"].items()) or "-"
        lines += [f"**{stats['epochs']} epochs: {stats['verdict']}.**", "",
                  f"- seed noise (pooled std over {len(result['seeds'])} seeds): {stats['noise'] * 100:.2f} points; "
                  f"separation (largest gap / noise) {stats['separation']:.2f}; resolvable gap "
                  f"{_points(stats['resolvable_gap'])} points",
                  f"- paired noise (pooled std of per-seed differences from none): {_points(stats['paired_noise'])} "
                  f"points; resolvable paired gap {_points(stats['paired_resolvable_gap'])} points",
                  f"- paired gaps to none: {gaps}",
                  f"- seconds per trial (one seed): {stats.get('seconds_per_trial')}", ""]
    return lines


def write_report(store: RunStore, config: SearchConfig, summary) -> Path:
    from . import plots

    records = summary.records
    best = summary.best
    lines = [f"# {store.name}", "",
             f"- strategy: `{config.strategy}`, {config.layers} layers x {config.heads} heads, window "
             f"{config.window[0]}x{config.window[1]}, semantics `{config.semantics}`",
             f"- proxy: {config.proxy.data}, width {config.proxy.width}, image {config.proxy.image_size} / patch "
             f"{config.proxy.patch_size}, {config.proxy.epochs} epochs, batch {config.proxy.batch_size}, lr "
             f"{config.proxy.lr}, layer scale {config.proxy.layer_scale}",
             f"- seeds per placement: {config.seeds} (base seed {config.proxy.seed}); trials: {len(records)} "
             f"({summary.trained} trained this session, {summary.reused} reused)",
             f"- reproduce: `{reproduce_command(store, config)}`", ""]
    own = store.path / "calibration.yaml"
    if own.exists():
        lines += calibration_section(yaml.safe_load(own.read_text(encoding="utf-8")))
    calibration = find_calibration(store.path.parent, config)
    if calibration and not own.exists():
        lines += [f"Calibration of this proxy at {calibration['epochs']} epochs ({_shown(Path(calibration['path']))}): "
                  f"{calibration.get('verdict', '')}.", ""]
    elif config.proxy.epochs < 10:
        lines += ["This proxy trains only a few epochs: it is a smoke test, too short to rank placements.", ""]
    baseline = baseline_of(records)
    if best is not None and baseline is not None and best.top1 is not None:
        lines += ["## Best against the baseline", "", comparison_line(best, baseline, calibration), ""]
    if best is not None:
        lines += [f"Chosen placement: trial {best.number} ({best.step}), `{best.spec.compact()}`, "
                  f"written to `best.yaml`.", ""]
        top = max((r for r in records if r.state == "complete" and r.top1 is not None), key=lambda r: r.top1)
        if best.top1 is not None and top.top1 > best.top1 and top.spec.key() != best.spec.key():
            lines += [f"The most accurate trial of the run is not the strategy's answer: trial {top.number} "
                      f"({top.label}, `{top.spec.compact()}`) scored {format_mean_std(top.val_top1)}. "
                      f"`maitsearch export {store.name} --trial {top.number} -o FILE` writes its spec.", ""]
    if summary.notes:
        lines += ["## Strategy", ""] + [f"- {note}" for note in summary.notes] + [""]
    lines += ["## Trials", "", "| trial | step | placement | masked | state | val top-1 (%) | test top-1 (%) | "
              "mean ALS | s |", "|---:|---|---|---:|---|---:|---:|---:|---:|"]
    for record in records:
        flat = [a for row in (record.als or []) for a in row]
        als = f"{sum(flat) / len(flat):.3f}" if flat else "-"
        placement = record.spec.compact() + (" (soft)" if record.spec.is_soft else "")
        state = record.state + (f" (= trial {record.duplicate_of})" if record.duplicate_of is not None else "")
        lines.append(f"| {record.number} | {record.label} | `{placement}` | {record.spec.num_masked} | {state} | "
                     f"{format_mean_std(record.val_top1)} | {format_mean_std(record.test_top1)} | {als} | "
                     f"{record.seconds:.0f} |")
    lines.append("")
    if best is not None and best.als:
        plots.als_heatmap(best.als, best.spec, store.path / "als.png",
                          f"ALS of trial {best.number} ({best.step}), {store.name}")
    if summary.problems:
        lines += ["## Unreadable files", ""] + [f"- {problem}" for problem in summary.problems] + [""]
    lines += figures_section({name: store.path / f"{name}.png" for name in FIGURES})
    return store.write_text("report.md", "\n".join(lines))


FIGURES = {"als": "ALS per head of the chosen trial (red outline: hard-masked head)",
           "placement": "the chosen placement", "accuracy": "validation top-1 over trials",
           "pareto": "accuracy against attention cost", "similarity": "cross-layer attention similarity"}


def _caption(name: str) -> str:
    """The run's figures have fixed captions; a trial's (``als-trial3``) say which trial."""
    kind, _, trial = name.partition("-trial")
    if trial.isdigit() and kind == "als":
        return f"ALS per head of trial {trial} (red outline: hard-masked head)"
    if trial.isdigit() and kind == "similarity":
        return f"cross-layer attention similarity of trial {trial} and the unmasked baseline"
    return FIGURES.get(name, name)


def figures_section(paths: dict) -> list[str]:
    present = [(name, Path(path)) for name, path in paths.items() if Path(path).exists()]
    if not present:
        return []
    lines = ["## Figures", ""]
    for name, path in present:
        lines += [f"{_caption(name)}:", "", f"![{name}]({path.name})", ""]
    return lines


def embed_figures(report: Path, figures: dict) -> None:
    """Replace the Figures section of an existing report.md with every figure now present."""
    from .. import atomic

    text = report.read_text(encoding="utf-8")
    head = text.split("## Figures", 1)[0].rstrip() + "\n\n"
    paths = {name: report.parent / f"{name}.png" for name in FIGURES}
    paths.update({path.stem: path for path in sorted(report.parent.glob("*.png"))})  # trials' figures too
    paths.update(figures)
    atomic.write_text(report, head + "\n".join(figures_section(paths)))
