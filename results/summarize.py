"""Build results/README.md from the committed run folders (no accuracy is typed by hand).

    python results/summarize.py

Each experiment's table comes from ``maitsearch.load_run``: validation and test top-1 as
mean ± std over seeds, and each placement's paired gap to the unmasked baseline of the same
depth and budget (per-seed differences: the same seed gives every placement the same initial
weights and data order, and training is deterministic per seed, so runs that trained the same
seeds pair across folders). Wall times come from results/wall_times.txt, written by the driver
that ran the commands. What the runs mean is written once, in results/FINDINGS.md, which the page
links to rather than copies.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import maitsearch
from maitsearch.stats import format_mean_std, mean_std, pooled_std, resolvable_gap

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # scaling.py, the scaling view, lives beside this script
import scaling  # noqa: E402


@dataclass
class Experiment:
    title: str
    runs: list[str]
    commands: list[str]
    paper: str
    keep: dict[str, str] = field(default_factory=dict)  # run: only its steps ending so (a calibration's "@2x")
    figures: list[str] = field(default_factory=list)  # run/figure.png shown inline
    proxy: str = "current"  # "first": made with the first default proxy (60 epochs, lr 1e-3, no shifts)
    note: str = ""  # how the run was made, where the wall time alone would mislead


EXPERIMENTS = [
    Experiment(
        "The default proxy's calibration, with the section 5.5 random-mask control", ["default24"],
        ["maitsearch calibrate --config default --budgets 1 --name default24"],
        "A random mask in one head of all 24 layers: 0.5 points below 24-layer DeiT, while Sch.1 is 0.8 above.",
        note="Every trial-seed came from the trial cache: they were trained while the proxy was chosen, by the "
             "same training code (same cache key), at about 220 s per trial-seed with two workers, so the run "
             "itself took seconds. The none and Sch.1 seeds equal default-l24h3's, trained afresh there, to the "
             "last digit."),
    Experiment(
        "The default run: the ALS strategy at 24 layers x 3 heads, and at 12 (a depth its levels were not "
        "chosen on)", ["default-l24h3", "default-l12h3"],
        ["maitsearch run --layers 24 --heads 3 --name default-l24h3",
         "maitsearch run --layers 12 --heads 3 --name default-l12h3"],
        "24-layer tiny on ImageNet: DeiT 78.3, Sch.1 79.1 (+0.8), Sch.2 79.1 (the ALS strategy's shape)."),
    Experiment(
        "The default run again, on another session's machine", ["default-l24h3-rerun"],
        ["maitsearch run --layers 24 --heads 3",
         "maitsearch run --layers 24 --heads 3 --name default-l24h3-rerun --cache <the first command's cache>"],
        "24-layer tiny on ImageNet: DeiT 78.3, Sch.1 79.1 (+0.8), Sch.2 79.1 (the ALS strategy's shape).",
        note="The README's first command, run from an empty folder on 2026-12-07 (torch 2.14.1, training code "
             "of default-l24h3's cache version; 12 min with two workers), then once more into this folder, "
             "which took its 9 trial-seeds from that run's trial cache."),
    Experiment(
        "Soft masks on the default proxy", ["default-soft"],
        ["maitsearch run --strategy soft --name default-soft"],
        "Sch.3 (soft masks, then none in the last layers) 79.3, +1.0 over DeiT; learned alphas are low "
        "(local) in early layers and high (global) late.", figures=["default-soft/alphas.png"]),
    Experiment(
        "A one-shot supernet on the default proxy, its ranking fidelity, and its answer on fresh seeds",
        ["default-supernet", "default-supernet-fidelity", "default-supernet-confirm"],
        ["maitsearch run --strategy supernet --name default-supernet",
         "maitsearch run --config results/default-supernet-fidelity/search.yaml --name default-supernet-fidelity",
         "maitsearch confirm default-supernet --top 1 --also sch2,all --seeds 5 --jobs 1"],
        "(not in the paper, which places masks by hand and by ALS: a weight-sharing supernet scores any "
        "placement in a fraction of a second, and the question is whether its scores rank placements as "
        "training each one does)",
        note="default-supernet-fidelity is default-supernet's settings with no search (evaluations 0, top 0, "
             "no baselines, fidelity train): it retrains its supernet (the same seed and scores) and trains the "
             "spread placements no committed run had, so that the fidelity reaches 17 placements. The "
             "supernet run's wall time is its first whole pass (supernet, 1,000 evaluations, baselines, three "
             "candidates retrained, two workers); a later version, which takes placements the supernet cannot "
             "tell apart for one network, replaced two of its candidates, and its report gives each part's "
             "cost. default-supernet-confirm trains on seeds 3-7, which neither run trained, one process at a "
             "time; its wall time is its second part (the first, cut short by a machine restart, trained the "
             "unmasked baseline in 814 s)."),
    Experiment(
        "A task where locality is not everything: mirror symmetry, 4 layers, mean-pooled head",
        ["mirror-calibration"],
        ["maitsearch calibrate --config mirror --budgets 1 --name mirror-calibration"],
        "(not in the paper: the label needs patches the whole image apart, so masking every head must cost "
        "accuracy, and the search must find a placement between none and all)",
        note="Masking every head does not lose here, so no search was run on this task: see the findings."),
    Experiment(
        "A task where locality is not everything: the digit under a square, 4 layers, mean-pooled head",
        ["cue-calibration", "cue-als"],
        ["maitsearch calibrate --config cue --budgets 1 --name cue-calibration",
         "maitsearch run --config cue --name cue-als"],
        "(not in the paper: the square is 4 patch rows above the digits, so masking every head must cost "
        "accuracy, and the search must find a placement between none and all)"),
    Experiment(
        "A task where locality is not everything, and where digits must be found first: the digit under a "
        "square, each digit at a random height, 8 layers, mean-pooled head",
        ["cue-lift-calibration", "cue-lift-optuna", "cue-lift-confirm", "cue-lift-soft"],
        ["maitsearch calibrate --config cue-lift --budgets 1 --name cue-lift-calibration",
         "maitsearch run --config cue-lift --strategy optuna --space blocks --pruner none --trials 12 --seeds 1 "
         "--jobs 2 --storage journal:results/cue-lift-optuna/study.journal --name cue-lift-optuna",
         "maitsearch run --config cue-lift --strategy presets --baselines none,all,results/cue-lift-optuna/best.yaml "
         "--name cue-lift-confirm",
         "maitsearch run --config cue-lift --strategy soft --baselines none,all --name cue-lift-soft"],
        "(not in the paper: masking every head must cost accuracy, and the search must find a placement "
        "between none and all)",
        note="Optuna's trials have one seed each (seed 0, the seed where the unmasked baseline is weakest); "
             "cue-lift-confirm retrains its best with the calibration's 3 seeds.",
        figures=["cue-lift-soft/alphas.png"]),
    Experiment(
        "A task where locality helps and is not everything: digits at random spots mixed with copy pairs, "
        "6 layers, mean-pooled head",
        ["shift-copy-calibration", "shift-copy-als", "shift-copy-optuna", "shift-copy-confirm"],
        ["maitsearch calibrate --config shift-copy --budgets 1 --name shift-copy-calibration",
         "maitsearch run --config shift-copy --name shift-copy-als",
         "maitsearch run --config shift-copy --strategy optuna --pruner none --trials 14 --seeds 1 --jobs 2 "
         "--storage journal:results/shift-copy-optuna/study.journal --name shift-copy-optuna",
         "maitsearch run --config shift-copy --strategy presets --baselines none,all,results/shift-copy-optuna/"
         "best.yaml --name shift-copy-confirm"],
        "(not in the paper: half the images reward local heads, half need patches half the image apart, so "
        "neither no mask nor a mask on every head should be the best placement)",
        note="Optuna's trials have one seed each (seed 0); shift-copy-confirm retrains its best with the "
             "calibration's 5 seeds. The calibration and the ALS run were first made with 3 seeds and then "
             "rerun with 5 under the same names, seeds 0-2 coming from the trial cache: the wall times are "
             "the 5-seed runs'."),
    Experiment(
        "The same mix read by a learned query (attention pooling) instead of the mean of the patches",
        ["shift-copy-map-calibration", "shift-copy-map-als", "shift-copy-map-optuna", "shift-copy-map-confirm",
         "shift-copy-map-soft", "shift-copy-map-optuna3", "shift-copy-map-heldout",
         "shift-copy-map-heldout-als-soft", "shift-copy-map-fresh16"],
        ["maitsearch calibrate --config shift-copy-map --budgets 1 --name shift-copy-map-calibration",
         "maitsearch run --config shift-copy-map --name shift-copy-map-als",
         "maitsearch run --config shift-copy-map --strategy optuna --pruner none --trials 14 --seeds 1 --jobs 2 "
         "--storage journal:results/shift-copy-map-optuna/study.journal --name shift-copy-map-optuna",
         "maitsearch run --config shift-copy-map --strategy presets --baselines none,all,"
         "results/shift-copy-map-optuna/best.yaml --name shift-copy-map-confirm",
         "maitsearch run --config shift-copy-map --strategy soft --name shift-copy-map-soft",
         "maitsearch run --config shift-copy-map-optuna3 --name shift-copy-map-optuna3",
         "maitsearch run --config shift-copy-map-heldout --baselines none,sch1,all,"
         "results/shift-copy-map-optuna3/best.yaml --name shift-copy-map-heldout",
         "maitsearch run --config shift-copy-map-heldout --baselines none,results/shift-copy-map-als/answer.yaml,"
         "results/shift-copy-map-soft/answer.yaml --name shift-copy-map-heldout-als-soft",
         "maitsearch run --config shift-copy-map-fresh16 --baselines none,all,"
         "results/shift-copy-map-als/answer.yaml --name shift-copy-map-fresh16"],
        "(not in the paper: as above, with `pool: map`, a relay only after the last block)",
        note="The calibration, the ALS run and the confirmation were first made with fewer seeds (3, then 5) and "
             "rerun with 8 under the same names, the earlier seeds coming from the trial cache; their wall times "
             "add every part. Optuna's trials have one seed each (seed 0); shift-copy-map-confirm retrains its "
             "best with the calibration's 8 seeds. shift-copy-map-optuna3's trials have 3 seeds each "
             "(0-2) and pair with its own unmasked trial. The two heldout runs retrain none, Sch.1, all and the "
             "searches' answers on seeds 8-15, which nothing else here trained (none comes from the trial cache "
             "in the second). shift-copy-map-fresh16 retrains the ALS answer, none and all on seeds 16-31, a "
             "test fixed before it ran (its preset says so) and final for this proxy.",
        figures=["shift-copy-map-soft/alphas.png"]),
    Experiment(
        "The attention-pooled mix at 12 layers",
        ["shift-copy-map-l12-calibration", "shift-copy-map-l12-als", "shift-copy-map-l12-heldout"],
        ["maitsearch run --config shift-copy-map --layers 12 --seeds 5 --name shift-copy-map-l12-als",
         "maitsearch calibrate --config shift-copy-map --layers 12 --seeds 5 --budgets 1 "
         "--name shift-copy-map-l12-calibration",
         "maitsearch run --config shift-copy-map-heldout --layers 12 --seeds 5 "
         "--baselines none,all,results/shift-copy-map-l12-als/best.yaml --name shift-copy-map-l12-heldout"],
        "(not in the paper: does twice the depth widen the gaps to the unmasked model?)",
        note="The ALS run and the calibration were first made with 3 seeds and rerun with 5 under the same "
             "names, the first seeds coming from the trial cache; their wall times add both parts (and leave "
             "out an interrupted part of the ALS rerun). The ALS run trained none, Sch.1 and all, and the "
             "calibration took them from the cache; the ALS command was then run once more (every trial "
             "cached) so that its report reads the calibration's noise. shift-copy-map-l12-heldout retrains "
             "the ALS answer, none and all on seeds 8-12, which nothing else here trained, since the seeds were "
             "added after a first look at 3."),
    Experiment(
        "Table 2 analogue: mask window at 12 layers", ["paper-depth"],
        ["maitsearch run --config paper-depth --name paper-depth"],
        "DeiT-tiny 72.2; one masked head in every layer: 3x3 72.6 (+0.4), 3x5 72.2, 5x5 72.1 (small: 79.8 -> "
        "79.9 / 80.1 / 80.0). 'Various mask sizes only lead to marginal differences.'", proxy="first"),
    Experiment(
        "Table 3 analogue: masking schemes at 24 layers x 3 heads",
        ["paper-tiny24-als", "paper-tiny24-soft", "paper-tiny24-optuna", "paper-tiny24-confirm"],
        ["maitsearch run --config paper-tiny24 --keep-checkpoints --name paper-tiny24-als",
         "maitsearch run --config paper-tiny24 --strategy soft --baselines '' --name paper-tiny24-soft",
         "maitsearch run --config paper-tiny24-optuna --jobs 2 --storage journal:results/paper-tiny24-optuna/"
         "study.journal --name paper-tiny24-optuna",
         "maitsearch run --config paper-tiny24-confirm --name paper-tiny24-confirm"],
        "24-layer tiny on ImageNet: DeiT 78.3, Sch.1 79.1 (+0.8), Sch.2 79.1, Sch.3 (soft) 79.3.", proxy="first"),
    Experiment(
        "Section 5.5 control: a random mask of the same drop-out rate, 24 layers", ["old-proxy-default24"],
        ["maitsearch calibrate --config default --epochs 30 --budgets 1,2 --jobs 2 --name default24 "
         "(renamed old-proxy-default24)"],
        "A random mask in one head of all 24 layers: 0.5 points below 24-layer DeiT, while Sch.1 is 0.8 above.",
        keep={"old-proxy-default24": "@2x"}, proxy="first"),
    Experiment(
        "Section 5.5 control: depth 12 against 24", ["paper-controls-l12", "old-proxy-default24"],
        ["maitsearch run --config paper-controls --layers 12 --name paper-controls-l12",
         "(24 layers: the 60-epoch rows of old-proxy-default24 above)"],
        "DeiT-tiny 72.2 at 12 layers and 78.3 at 24; one masked head per layer 72.6 and 79.1, so the mask's "
        "gain grows from +0.4 to +0.8 with depth. Beyond 24 layers DeiT saturates (+0.25 at 36) while mixed "
        "masking keeps gaining (79.8, Figure 4).",
        keep={"old-proxy-default24": "@2x"}, proxy="first"),
    Experiment(
        "Figure 3 analogue: ALS per head, Sch.1 and soft masks", [],
        ["maitsearch results paper-tiny24-als --plot --trial 1",
         "maitsearch results paper-tiny24-soft --plot --trial 0"],
        "Sch.1's masked head has a much higher ALS than the unmasked heads in layers 0-22: about 0.9 in the "
        "first 8 layers, declining to about 0.6, and below 0.05 in the last. With soft masks, several heads "
        "of the first 8 layers exceed 0.9, and every head of the last 10 is below 0.3.",
        proxy="first", figures=["paper-tiny24-als/als-trial1.png", "paper-tiny24-soft/als-trial0.png"]),
    Experiment(
        "Appendix A.3 analogue: cross-layer attention similarity, DeiT and MaiT (Sch.1), 24 layers", [],
        ["maitsearch results paper-tiny24-als --plot --trial 1"],
        "At 36 layers, DeiT's last 8 layers reach an average similarity of 0.75 (attention collapse). One "
        "masked head per layer leaves the unmasked heads at 0.75 too, and the masked head's maps are more "
        "uniform with a lower peak; mixed masking lowers the last 8 layers to 0.65.",
        proxy="first", figures=["paper-tiny24-als/similarity-trial1.png"]),
    Experiment(
        "The default run", ["old-proxy-default-l24h3"],
        ["maitsearch run --layers 24 --heads 3 --name default-l24h3 (renamed old-proxy-default-l24h3)"],
        "(the tool's own default at the time: the ALS strategy with the none and Sch.1 baselines)", proxy="first"),
]


def differences(record, baseline) -> list[float]:
    """Per-seed validation differences from the baseline; [] where they do not pair."""
    if baseline is None or record.spec.key() == baseline.spec.key() or record.seeds != baseline.seeds:
        return []
    return [a - b for a, b in zip(record.val_top1, baseline.val_top1)]


def paired(diffs: list[float], resolvable: float) -> str:
    if len(diffs) < 2:
        return "-"
    mean, std = mean_std(diffs)
    return f"{mean * 100:+.2f} ± {std * 100:.2f}" + (" *" if abs(mean) > resolvable else "")


def unmasked(records, record, budget: str, data: str):
    """The unmasked placement of the record's task, depth, budget and seeds, to pair it with (a run
    on held-out seeds pairs with its own unmasked baseline)."""
    return next((r for run, r in records if r.spec.layers == record.spec.layers and r.spec.num_masked == 0
                 and not r.spec.is_soft and r.step.endswith(budget) and r.state == "complete"
                 and run.dataset == data and r.seeds == record.seeds), None)


def shown_rows(experiment: Experiment, runs: list) -> list[tuple]:
    """(run, record, paired differences) for every trained placement the experiment shows; an
    experiment pairs only within its own runs, which share one proxy."""
    everything = [(run, record) for run in runs for record in run.records]
    rows = []
    for run in runs:
        budget = experiment.keep.get(run.name, "")
        for record in run.records:
            if record.duplicate_of is None and record.state == "complete" and record.step.endswith(budget):
                rows.append((run, record, differences(record, unmasked(everything, record, budget, run.dataset))))
    return rows


def group(experiment: Experiment, run, record) -> tuple[str, str, int, str]:
    """Placements that pair with each other: one proxy, one task, one depth, one pooling head."""
    return experiment.proxy, run.dataset, record.spec.layers, run.config["proxy"].get("pool", "token")


def yardsticks(rows: dict[str, list[tuple]]) -> dict[tuple, tuple[float, int, int]]:
    """Per group: (pooled paired noise, placements pooled, most seeds of one). Each placement's
    differences are from the unmasked run of its own seeds (the same initial weights and data
    order), and a group's differences pool into one noise estimate (one placement's own 3-seed
    std is too noisy a yardstick; the calibration pools the same way)."""
    groups: dict[tuple, dict[tuple, list[float]]] = {}
    for experiment in EXPERIMENTS:
        for run, record, diffs in rows.get(experiment.title, []):
            if len(diffs) > 1:
                groups.setdefault(group(experiment, run, record), {})[(record.spec.key(), tuple(record.seeds))] = diffs
    out = {}
    for key, members in groups.items():
        out[key] = (pooled_std(members), len(members), max(len(d) for d in members.values()))
    return out


def table(experiment: Experiment, rows: list[tuple], gaps: dict) -> list[str]:
    lines = ["| run | trial | placement | compact | seeds | val top-1 (%) | test top-1 (%) | paired gap to none |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for run, record, diffs in rows:
        label = record.label + (" (soft)" if record.spec.is_soft and "soft" not in record.label else "")
        pooled = gaps.get(group(experiment, run, record))
        resolvable = resolvable_gap(pooled[0], len(diffs), paired=True) if pooled and diffs else float("inf")
        lines.append(f"| {run.name} | {record.number} | {label} | `{record.spec.compact()}` | "
                     f"{len(record.val_top1)} | {format_mean_std(record.val_top1)} | "
                     f"{format_mean_std(record.test_top1)} | "
                     f"{paired(diffs, resolvable)} |")
    return lines + [""]


def wall_times() -> dict[str, int]:
    """Seconds per run; a run resumed after an interruption has one line per part."""
    times: dict[str, int] = {}
    path = ROOT / "wall_times.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, seconds = line.split()[:2]
        times[name] = times.get(name, 0) + int(seconds)
    return times


def transfer_section() -> list[str]:
    """Every transfer study under results/ (a folder with a transfer.yaml), from its own numbers:
    the command, Kendall's tau with its bootstrap interval, the proxy's pick, the target's best,
    the regret and the verdict. None yet: no section."""
    from maitsearch.runs.transfer_report import load_transfer, with_interval

    studies = [(folder.name, study) for folder in sorted(ROOT.iterdir()) if folder.is_dir()
               for study in [load_transfer(folder)] if study is not None]
    if not studies:
        return []
    lines = ["## Transfer studies: does the proxy's ranking carry to bigger or real targets?", "",
             "Each study trains the same placements with the same seeds on a proxy and on a target "
             "(`maitsearch transfer`); its folder holds both runs (`maitsearch results --results results/<study>`). "
             "Tau: Kendall's tau-b between the two rankings of per-placement means, with its 95% bootstrap "
             "interval over seeds. Regret: the target's best minus the proxy's pick, on the target, in points.", ""]
    for name, study in studies:
        rows = {row["placement"]: row for row in study.get("placements") or []}
        pick, best = study.get("proxy_pick"), study.get("target_best")
        target_of = lambda placement: format_mean_std((rows.get(placement) or {}).get("target", {}).get("values", []))  # noqa: E731
        lines += [f"### {name}: `{(study.get('proxy') or {}).get('source', '?')}` to "
                  f"`{(study.get('target') or {}).get('source', '?')}`", "", "Command:", "",
                  f"    {study.get('command', '?')}", "",
                  f"- target: {(study.get('target') or {}).get('about', '?')}",
                  f"- Kendall's tau {with_interval(study, 'kendall_tau')}, Spearman's rho "
                  f"{with_interval(study, 'spearman_rho')}, over {len(rows)} placements x {study.get('seeds', '?')} seeds",
                  f"- the proxy's pick: {pick} ({target_of(pick)} on the target); the target's best: {best} "
                  f"({target_of(best)})",
                  f"- verdict: {study.get('verdict', '?')}", "",
                  f"Report: [{name}]({name}/report.md)", ""]
    return lines


def build() -> str:
    """The results page, from the run folders."""
    times = wall_times()
    loaded = {name: maitsearch.load_run(ROOT / name) for experiment in EXPERIMENTS for name in experiment.runs
              if (ROOT / name).is_dir()}
    rows = {experiment.title: shown_rows(experiment, [loaded[n] for n in experiment.runs if n in loaded])
            for experiment in EXPERIMENTS}
    gaps = yardsticks(rows)
    lines = ["# Paper findings at proxy scale", "",
             "Every run below was made by the command shown, from the repository root, on a 2-core CPU (no GPU), "
             "and `maitsearch results <run>` reads it back. Two proxies appear. The *current* default proxy "
             "(the `digits-shift` task, width 48, 30 epochs at lr 3e-3, 4-pixel shifts, sin-cos position start; "
             "docs/PROXY.md) made the first sections. The *first* default proxy (60 "
             "epochs at lr 1e-3, no shifts, timm's position init) made the sections marked so; its attention "
             "stayed near uniform, which is why it was replaced. Placements pair only within one proxy. "
             "3 seeds per placement unless the table says otherwise. Accuracies are validation and test top-1 "
             "in %, mean ± std over seeds. *Paired gap*: mean ± std of the per-seed difference in validation "
             "top-1 from the unmasked placement of the same proxy, task, depth and pooling head; `*` marks a gap larger than "
             "two standard errors of the paired noise, pooled over every placement of that group on this page. "
             "Gaps without `*` are within the seed noise.", ""]
    pooling = {"token": "", "avg": ", mean-pooled", "map": ", attention-pooled"}
    lines += [f"- {proxy} proxy, {data}, {layers} layers{pooling.get(pool, f', {pool} pool')}: paired noise "
              f"{noise * 100:.2f} points pooled over {count} placements; with {seeds} seeds, gaps above "
              f"{resolvable_gap(noise, seeds, paired=True) * 100:.2f} points stand clear of it (fewer seeds "
              f"need more)."
              for (proxy, data, layers, pool), (noise, count, seeds) in gaps.items()]
    lines += [""]
    for experiment in EXPERIMENTS:
        runs = [loaded[name] for name in experiment.runs if name in loaded]
        timed = [f"{name} {times[name] / 60:.0f} min" for name in experiment.runs if name in times]
        marked = " (first proxy)" if experiment.proxy == "first" else ""
        lines += [f"## {experiment.title}{marked}", "", "Commands:", ""]
        lines += [f"    {command}" for command in experiment.commands] + [""]
        if timed:
            lines += ["Wall time: " + ", ".join(timed) + ".", ""]
        if experiment.note:
            lines += [experiment.note, ""]
        lines += [f"The paper: {experiment.paper}", ""]
        if experiment.runs and not runs:
            lines += ["(not run yet)", ""]
        if runs:
            lines += table(experiment, rows[experiment.title], gaps)
        for run in runs:
            if run.calibration and experiment.runs[0] == run.name:
                for budget in (run.calibration.get("by_budget") or {}).values():
                    lines += [f"Calibration verdict at {budget['epochs']} epochs: {budget['verdict']}.", ""]
        for figure in experiment.figures:
            lines += [f"![{figure}]({figure})" if (ROOT / figure).exists() else f"({figure}: not drawn yet)", ""]
        if runs:
            lines += ["Reports: " + ", ".join(f"[{run.name}]({run.name}/report.md)" for run in runs), ""]
    lines += transfer_section()
    lines += scaling.section()
    lines += ["## Findings", "", "What these runs show, item by item, against the paper: [FINDINGS.md](FINDINGS.md).", ""]
    return "\n".join(lines)


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and nothing else
    (ROOT / "README.md").write_text(build())
    print(f"wrote {ROOT / 'README.md'}")
    figure = scaling.draw(scaling.scaling_rows())
    if figure:
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
