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
    from .cache import NEUTRAL_OPTIONS  # the trial cache's module imports torch: only when needed

    ignore = ("seed", "device", "epochs")
    wanted = {k: v for k, v in config.proxy.to_dict().items() if k not in ignore}
    for path in sorted(Path(results_root).glob("*/calibration.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        # a calibration written before an option existed trained it at its neutral value
        proxy = {k: v for k, v in {**NEUTRAL_OPTIONS, **(data.get("proxy") or {})}.items() if k not in ignore}
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


def preset_record(records: list[TrialRecord], name: str) -> TrialRecord | None:
    """The first complete trial of a named preset (a baseline such as ``sch1``)."""
    return next((r for r in records if r.state == "complete" and r.spec.meta.get("preset") == name
                 and r.duplicate_of is None), None)


def comparison_line(best: TrialRecord, baseline: TrialRecord, calibration: dict | None,
                    names: tuple[str, str] = ("best", "unmasked baseline")) -> str:
    """One placement against another, judged on per-seed differences (the same seeds share
    initial weights and data order), with the calibration's paired noise when there is one."""
    gain = best.top1 - baseline.top1
    seeds = min(len(best.val_top1), len(baseline.val_top1))
    same_seeds = best.seeds == baseline.seeds and seeds >= 1
    # this comparison's own paired noise: the yardstick without a calibration, a second opinion with one
    own_noise = (mean_std([a - b for a, b in zip(best.val_top1, baseline.val_top1)])[1]
                 if same_seeds and seeds >= 2 else float("nan"))
    calibrated = bool(calibration and calibration.get("paired_noise") is not None)
    if calibrated:
        noise, source = float(calibration["paired_noise"]), f"the calibration in {_shown(Path(calibration['path']))}"
    elif not math.isnan(own_noise):
        noise, source = own_noise, "this run's paired seeds"
    else:
        noise, source = float("nan"), "nowhere (one seed and no calibration)"
    gap = resolvable_gap(noise, max(seeds, 1), paired=True)
    if math.isnan(gap):
        verdict = "with one seed and no calibration, its noise is unknown"
    elif abs(gain) < gap:
        verdict = "within the measured seed noise"
    else:
        verdict = ("a gain" if gain > 0 else "a loss") + " beyond the measured seed noise"
    detail = ""
    if not math.isnan(gap):
        parts = [f"resolvable gap {gap * 100:.2f} points, noise from {source}"]
        if calibrated and seeds >= 3 and not math.isnan(own_noise):
            parts.append(own_seeds_check(gain, own_noise, seeds))
        detail = f" ({'; '.join(parts)})"
    return (f"{names[0]} (trial {best.number}) {format_mean_std(best.val_top1)} vs {names[1]} "
            f"(trial {baseline.number}) {format_mean_std(baseline.val_top1)} validation top-1: {gain * 100:+.2f} "
            f"points over {seeds} paired seed(s), {verdict}{detail}.")


def own_seeds_check(gain: float, own_noise: float, seeds: int) -> str:
    """The same comparison judged by its own per-seed differences. A calibration's noise is an
    estimate pooled over a few placements, and a placement with many masked heads can vary more
    than that on fresh seeds; when the two verdicts differ, the reader should see both."""
    gap = resolvable_gap(own_noise, seeds, paired=True)
    verdict = "within" if abs(gain) < gap else "beyond"
    return f"by its own {seeds} seeds' spread ({own_noise * 100:.2f}) the gap is {gap * 100:.2f}, {verdict}"


def comparisons(records: list[TrialRecord], best: TrialRecord | None, answer: TrialRecord | None,
                calibration: dict | None, *, strategy: str | None = None) -> list[str]:
    """What a reader of a run needs first: best.yaml and the strategy's own answer against the
    unmasked baseline and against Sch.1, the placement a person writes by hand. A presets run
    has no answer of its own (it retrains chosen placements to compare them), so there each
    placement is judged against the unmasked baseline."""
    lines = []
    none, sch1 = baseline_of(records), preset_record(records, "sch1")
    if best is not None and best.top1 is not None:
        lines.append(f"best.yaml is trial {best.number} ({best.label}, `{best.spec.compact()}`): the most accurate "
                     f"placement this run measured with all its seeds.")
        if none is not None and none.number != best.number:
            lines.append(comparison_line(best, none, calibration))
    if strategy == "presets" and none is not None:
        for record in records:
            if (record.state == "complete" and record.duplicate_of is None and record.top1 is not None
                    and record.number not in (none.number, getattr(best, "number", None))):
                lines.append(comparison_line(record, none, calibration, names=(record.label, "unmasked baseline")))
    if answer is not None and answer.top1 is not None:
        same = best is not None and answer.spec.key() == best.spec.key()
        lines.append(f"the strategy's own answer is trial {answer.number} ({answer.label}, `{answer.spec.compact()}`)"
                     + ("; it is best.yaml." if same else "; it is not the most accurate, so it is written to "
                        "answer.yaml beside best.yaml."))
        for other, name in ((none, "unmasked baseline"), (sch1, "Sch.1")):
            if other is None or other.spec.key() == answer.spec.key():
                continue
            if same and other is none and none.number != best.number:  # best.yaml's line above says it
                continue
            lines.append(comparison_line(answer, other, calibration, names=("the strategy's answer", name)))
    return lines


def _points(fraction) -> str:
    return "-" if fraction is None else f"{fraction * 100:.2f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def mechanism_lines(result: dict) -> list[str]:
    """The calibration's mechanism section, as sentences: is there attention structure for the
    paper's strategies to read?"""
    found = result.get("mechanism") or {}
    lines = []
    unmasked, masked = found.get("unmasked"), found.get("sch1_masked_head")
    if masked:
        lines.append(f"Sch.1's masked head: normalized ALS {masked['first_third']:+.3f} in the first third of the "
                     f"layers, {masked['last_third']:+.3f} in the last, at most {masked['max']:+.3f}; "
                     + ("it reaches 0.5 early, as the paper's masked heads do." if masked["reaches_half_early"]
                        else "below the 0.5 that the paper's masked heads exceed early (about 0.9 there)."))
    if unmasked:
        lines.append(f"Unmasked baseline, mean over heads: {unmasked['first_third']:+.3f} in the first third, "
                     f"{unmasked['last_third']:+.3f} in the last (early minus late {unmasked['early_minus_late']:+.3f} "
                     f"± {unmasked['early_minus_late_std']:.3f} over seeds); "
                     + ("more local early than late beyond seed noise, as DeiT is in the paper."
                        if unmasked["more_local_early"] else "not measurably more local early than late."))
    for name, values in (("unmasked baseline", (unmasked or {}).get("by_layer")),
                         ("Sch.1 masked head", (masked or {}).get("by_layer"))):
        if values:
            lines.append(f"{name} by layer: " + " ".join(f"{v:+.2f}" for v in values))
    return lines


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
    lines += [f"**Warning: {warning}.**" for warning in result.get("warnings") or []]
    if result.get("fidelity"):
        lines += ["### Supernet ranking fidelity", ""] + fidelity_lines(result["fidelity"])
    mechanism = mechanism_lines(result)
    if mechanism:
        lines += ["", "### Mechanism: normalized ALS (0 uniform, 1 all in the window)", ""]
        lines += [f"- {line}" for line in mechanism]
    lines.append("")
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
                  f"- seconds per trial (one seed): {_seconds(stats.get('seconds_per_trial'))}", ""]
    return lines


def fidelity_sentence(fidelity: dict) -> str:
    """Kendall's tau between a supernet's scores and stand-alone means, in one sentence."""
    if fidelity.get("tau") is None:
        missing = ", ".join(fidelity.get("missing") or []) or "none"
        return (f"ranking fidelity: {fidelity['placements']} placement(s) have stand-alone means, too few for "
                f"Kendall's tau (missing: {missing})")
    low, high = fidelity["interval"]
    return (f"ranking fidelity: Kendall's tau {fidelity['tau']:+.2f} (95% bootstrap interval {low:+.2f} to "
            f"{high:+.2f}) between supernet scores and stand-alone means over {fidelity['placements']} placements")


def fidelity_lines(fidelity: dict | None) -> list[str]:
    """The sentence and the placements it was read from: supernet score beside stand-alone mean."""
    if not fidelity:
        return []
    lines = [f"{fidelity_sentence(fidelity)}.", "",
             "| placement | name | supernet score (%) | stand-alone (%) |", "|---|---|---:|---:|"]
    for row in sorted(fidelity["rows"], key=lambda r: -(r["score"] if r.get("score") is not None else -1)):
        alone = format_mean_std(row["standalone"]) if row.get("standalone") else "-"
        lines.append(f"| `{row['placement']}` | {row['name']} | {_points(row.get('score'))} | {alone} |")
    return lines + [""]


def run_fidelity(supernet: dict | None, calibration: dict | None) -> dict | None:
    """A run folder's ranking fidelity: a supernet run's own (supernet.yaml), else the one a
    ``calibrate --fidelity`` measured (calibration.yaml)."""
    return (supernet or {}).get("fidelity") or (calibration or {}).get("fidelity")


def fidelity_figure(fidelity: dict | None, path: Path, run: str) -> Path | None:
    """Supernet score against stand-alone mean, one point per placement: where the supernet's
    order departs from training's, the picture shows which placements it misjudges. None where
    fewer than two placements were measured both ways: one point shows no order."""
    from . import plots

    rows = [row for row in (fidelity or {}).get("rows") or []
            if row.get("score") is not None and row.get("standalone")]
    if len(rows) < 2:
        return None
    names = [row["name"] for row in rows]
    alone = [mean_std(row["standalone"]) for row in rows]
    tau = "" if fidelity.get("tau") is None else f", Kendall's tau {fidelity['tau']:+.2f}"
    return plots.accuracy_scatter(
        [row["score"] for row in rows], [0.0] * len(rows), [mean for mean, _ in alone], [std for _, std in alone],
        names, path, f"{run}: supernet score against stand-alone training{tau}",
        ("supernet score on held-out training images (%)", "stand-alone validation top-1 (%)"),
        pick=max(rows, key=lambda row: row["score"])["name"],
        best=names[max(range(len(rows)), key=lambda i: alone[i][0])],
        pick_label="the supernet's top score", best_label="the stand-alone best")


def supernet_section(data: dict) -> list[str]:
    """A supernet run's costs, phase by phase, and its ranking fidelity (supernet.yaml)."""
    lines = ["## Supernet", ""]
    for trained in data.get("supernets") or []:
        lines.append(f"- training, seed {trained['seed']}: {trained['epochs']} epochs ({trained['steps']} steps, "
                     f"{trained['sampling']} sampling) on {trained['train_images']} training images: "
                     f"{_seconds(trained['seconds'])} s")
    scores = data.get("evaluations") or {}
    if scores:
        tuned = f", each after a {scores['finetune_steps']}-step fine-tune" if scores.get("finetune_steps") else ""
        each = f"{scores['seconds_each']:.2f}" if scores.get("seconds_each") is not None else "-"
        lines.append(f"- evaluations: {scores['searched']} ({scores['distinct']} distinct placements; "
                     f"{data['sampler']} over the {data['space']} space) and {scores['fidelity']} fidelity scores, on "
                     f"{scores['held_out_images']} held-out training images{tuned}: {_seconds(scores['seconds'])} s "
                     f"of scoring, {each} s per placement")
    for key, what in (("retraining", "top candidates retrained"), ("baselines", "baselines"),
                      ("fidelity_training", "fidelity placements trained")):
        cost = data.get(key) or {}
        if cost.get("trials"):
            lines.append(f"- {what}: {cost['trials']} placement(s), {cost['trial_seeds']} trial-seed(s) trained here, "
                         f"{_seconds(cost['seconds'])} s")
    lines.append("")
    if data.get("fidelity"):
        lines += ["### Ranking fidelity", ""] + fidelity_lines(data["fidelity"])
    return lines


def _provenance(records) -> str:
    """Where the run's trials came from, counted over the whole run rather than the last
    session, so a report rewritten by a resume says what the one before it said."""
    reused = sum(record.duplicate_of is not None for record in records)
    cached = sum(record.duplicate_of is None and record.all_cached for record in records)
    return f"{len(records) - reused - cached} trained, {cached} from the trial cache, {reused} reused"


def write_report(store: RunStore, config: SearchConfig, summary) -> Path:
    from . import plots
    from .transfer_report import transfer_lines

    records = summary.records
    best = summary.best
    lines = [f"# {store.name}", "",
             f"- strategy: `{config.strategy}`, {config.layers} layers x {config.heads} heads, window "
             f"{config.window[0]}x{config.window[1]}, semantics `{config.semantics}`",
             f"- proxy: {config.proxy.data}, width {config.proxy.width}, image {config.proxy.image_size} / patch "
             f"{config.proxy.patch_size}, {config.proxy.epochs} epochs, batch {config.proxy.batch_size}, lr "
             f"{config.proxy.lr}, layer scale {config.proxy.layer_scale}",
             f"- seeds per placement: {config.seeds} (base seed {config.proxy.seed}); trials: {len(records)} "
             f"({_provenance(records)})",
             f"- reproduce: `{reproduce_command(store, config)}`", ""]
    own = store.path / "calibration.yaml"
    own_calibration = yaml.safe_load(own.read_text(encoding="utf-8")) if own.exists() else None
    if own_calibration:
        lines += calibration_section(own_calibration)
    calibration = find_calibration(store.path.parent, config)
    if calibration and not own.exists():
        lines += [f"Calibration of this proxy at {calibration['epochs']} epochs ({_shown(Path(calibration['path']))}): "
                  f"{calibration.get('verdict', '')}.", ""]
    elif config.proxy.epochs < 10:
        lines += ["This proxy trains only a few epochs: it is a smoke test, too short to rank placements.", ""]
    lines += transfer_lines(store.path, config) + [""]  # has a target checked this proxy's ranking?
    found = comparisons(records, best, summary.answer, calibration, strategy=config.strategy)
    if found:
        lines += ["## Answer against the baselines", ""] + [f"- {line}" for line in found] + [""]
    if summary.notes:
        lines += ["## Strategy", ""] + [f"- {note}" for note in summary.notes] + [""]
    supernet_file = store.path / "supernet.yaml"
    supernet = yaml.safe_load(supernet_file.read_text(encoding="utf-8")) if supernet_file.exists() else None
    if supernet:
        lines += supernet_section(supernet)
    lines += ["## Trials", "", "Normalized ALS: 0 is uniform attention, 1 all of it inside the window.", "",
              "| trial | step | placement | masked | state | val top-1 (%) | test top-1 (%) | "
              "norm. ALS | s |", "|---:|---|---|---:|---|---:|---:|---:|---:|"]
    for record in records:
        flat = [a for row in (record.normalized_als() or []) for a in row]
        als = f"{sum(flat) / len(flat):+.3f}" if flat else "-"
        placement = record.spec.label()
        state = record.state + (f" (= trial {record.duplicate_of})" if record.duplicate_of is not None else "")
        lines.append(f"| {record.number} | {record.label} | `{placement}` | {record.spec.num_masked} | {state} | "
                     f"{format_mean_std(record.val_top1)} | {format_mean_std(record.test_top1)} | {als} | "
                     f"{'cached' if record.all_cached else f'{record.seconds:.0f}'} |")
    lines.append("")
    lines += parts_section(records)
    shown = summary.answer or best
    if shown is not None and shown.normalized_als():
        plots.als_heatmap(shown.normalized_als(), shown.spec, store.path / "als.png",
                          plots.als_title(shown.number, shown.label, store.name))
    fidelity_figure(run_fidelity(supernet, own_calibration), store.path / "fidelity.png", store.name)
    if summary.problems:
        lines += ["## Unreadable files", ""] + [f"- {problem}" for problem in summary.problems] + [""]
    lines += figures_section({name: store.path / f"{name}.png" for name in FIGURES})
    return store.write_text("report.md", "\n".join(lines))


def parts_section(records: list[TrialRecord]) -> list[str]:
    """On a mixed task, each part's validation top-1: a placement can gain on one part what it
    loses on the other, and the overall figure hides which."""
    measured = [r for r in records if r.val_top1_by_part and r.duplicate_of is None]
    if not measured:
        return []
    names = list(measured[0].val_top1_by_part)
    lines = ["## Validation top-1 by part", "",
             "| trial | step | placement | " + " | ".join(f"{name} (%)" for name in names) + " |",
             "|---:|---|---|" + "---:|" * len(names)]
    for record in measured:
        cells = " | ".join(format_mean_std(record.val_top1_by_part.get(name, [])) for name in names)
        lines.append(f"| {record.number} | {record.label} | `{record.spec.label()}` | {cells} |")
    return lines + [""]


FIGURES = {"als": "normalized ALS per head of the strategy's answer, else of best.yaml (red outline: hard-masked head)",
           "alphas": "soft-mask alphas over the epochs, one line per head",
           "placement": "the chosen placement", "accuracy": "validation top-1 over trials",
           "pareto": "accuracy against attention cost", "similarity": "cross-layer attention similarity",
           "fidelity": "the supernet's score against stand-alone training (mean ± std over seeds), one point per "
                       "placement"}


def _caption(name: str) -> str:
    """The run's figures have fixed captions; a trial's (``als-trial3``) say which trial."""
    kind, _, trial = name.partition("-trial")
    if trial.isdigit() and kind == "als":
        return f"normalized ALS per head of trial {trial} (red outline: hard-masked head)"
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
