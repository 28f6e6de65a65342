"""Build results/README.md from the committed run folders (no number is typed by hand).

    python results/summarize.py

Each experiment's table comes from ``maitsearch.load_run``: validation and test top-1 as
mean ± std over seeds, and each placement's paired gap to the unmasked baseline (per-seed
differences; the same seed gives every placement the same initial weights and data order).
Wall times come from results/wall_times.txt, written by the runs' driver.
"""

from __future__ import annotations

from pathlib import Path

import maitsearch
from maitsearch.stats import mean_std, resolvable_gap

ROOT = Path(__file__).resolve().parent

EXPERIMENTS = [
    # (title, run folders, command, what the paper found)
    ("Table 2 analogue: mask depth at 12 layers", ["paper-depth"],
     "maitsearch run --config paper-depth --name paper-depth",
     "DeiT-tiny 72.2; one masked head per layer: 3x3 72.6 (+0.4), 3x5 72.2, 5x5 72.1. Small: 79.8 -> "
     "79.9 / 80.1 / 80.0. 'Various mask sizes only lead to marginal differences.'"),
    ("Table 3 analogue: masking schemes at 24 layers",
     ["paper-tiny24-als", "paper-tiny24-soft", "paper-tiny24-optuna"],
     "maitsearch run --config paper-tiny24 --keep-checkpoints --name paper-tiny24-als; "
     "maitsearch run --config paper-tiny24 --strategy soft --baselines '' --name paper-tiny24-soft; "
     "maitsearch run --config paper-tiny24 --strategy optuna --trials 10 --name paper-tiny24-optuna",
     "24-layer tiny: DeiT 78.3, Sch.1 79.1, Sch.2 79.1, Sch.3 (soft) 79.3."),
    ("Section 5.5 controls: random mask of the same drop-out rate, 24 layers", ["paper-controls"],
     "maitsearch run --config paper-controls --name paper-controls",
     "A random mask in one head of all 24 layers: 0.5 points below 24-layer DeiT, while Sch.1 is 0.8 above."),
    ("Section 5.5 controls: depth 12 against 24", ["paper-controls-l12", "paper-controls"],
     "maitsearch run --config paper-controls --layers 12 --name paper-controls-l12",
     "DeiT saturates with depth; masks help the deeper model more (Figure 4)."),
    ("The default run", ["default-l24h3"], "maitsearch run --layers 24 --heads 3 --name default-l24h3",
     "(the tool's own default: ALS strategy with the none and sch1 baselines)"),
    ("Calibration of the default proxy", ["default24"],
     "maitsearch calibrate --config default --budgets 1,2 --jobs 2 --name default24",
     "(not in the paper: does this proxy rank placements at all?)"),
]


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean * 100:.2f} ± {std * 100:.2f}" if len(values) > 1 else f"{mean * 100:.2f}"


def paired(record, baseline) -> str:
    if baseline is None or record is baseline or record.seeds != baseline.seeds or not record.val_top1:
        return "-"
    diffs = [a - b for a, b in zip(record.val_top1, baseline.val_top1)]
    mean, std = mean_std(diffs)
    clear = len(diffs) > 1 and abs(mean) > resolvable_gap(std, len(diffs), paired=True)
    return f"{mean * 100:+.2f} ± {std * 100:.2f}" + (" *" if clear else "")


def table(runs: list) -> list[str]:
    rows = ["| run | trial | placement | compact | val top-1 (%) | test top-1 (%) | paired gap to none (val) |",
            "|---|---:|---|---|---:|---:|---:|"]
    for run in runs:
        baseline = run.baseline_record()
        for record in run.records:
            if record.duplicate_of is not None or record.state != "complete":
                continue
            label = record.spec.meta.get("preset") or record.step
            rows.append(f"| {run.name} | {record.number} | {label} | `{record.spec.compact()}` | "
                        f"{fmt(record.val_top1)} | {fmt(record.test_top1)} | {paired(record, baseline)} |")
    return rows


def wall_times() -> dict[str, str]:
    path = ROOT / "wall_times.txt"
    times = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, seconds = line.split()[:2]
            times[name] = f"{int(seconds) / 60:.0f} min"
    return times


def main() -> None:
    times = wall_times()
    lines = ["# Paper findings at proxy scale", "",
             "Every run below was made by the command shown, on a 2-core CPU (no GPU), and is read back by "
             "`maitsearch results <run>`. All use the default proxy (the `digits-shift` task, width 48, 30 epochs; "
             "see the main README), 3 seeds per placement. Accuracies are validation and test top-1 in %, mean ± "
             "std over seeds. *Paired gap*: the mean ± std of the per-seed difference from the unmasked "
             "baseline; `*` marks a gap larger than two standard errors of that difference (larger than the "
             "noise). Gaps without `*` are within noise.", ""]
    for title, names, command, paper in EXPERIMENTS:
        runs = [maitsearch.load_run(ROOT / name) for name in names if (ROOT / name).is_dir()]
        lines += [f"## {title}", "", f"Command: `{command}`", "",
                  "Wall time: " + (", ".join(f"{n} {times[n]}" for n in names if n in times) or "-"), "",
                  f"The paper: {paper}", ""]
        if not runs:
            lines += ["(not run yet)", ""]
            continue
        lines += table(runs) + [""]
        for run in runs:
            if run.calibration:
                lines += [f"Calibration verdict: {run.calibration['verdict']}.", ""]
            figures = [p.name for p in sorted(run.path.glob("*.png"))]
            if figures:
                lines += [" ".join(f"[{f}]({run.name}/{f})" for f in figures), ""]
    lines += ["## Findings", "", "FINDINGS", ""]
    (ROOT / "README.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'README.md'}")


if __name__ == "__main__":
    main()
