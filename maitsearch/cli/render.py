"""Rich renderings of library data. Only the CLI imports this module."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ..spec import MaskSpec


def placement_grid(spec: MaskSpec, als=None) -> Table:
    """Layers down, heads across: a filled square for a hard mask, alpha for a soft one, a dot
    for an unmasked head; with ``als`` (L x H), each cell also shows the head's ALS."""
    table = Table(title=f"placement {spec.compact()}", show_edge=False, pad_edge=False)
    table.add_column("layer", justify="right", style="dim")
    for head in range(spec.heads):
        table.add_column(f"h{head}", justify="center")
    for layer, alphas in enumerate(spec.alphas()):
        cells = []
        for head, alpha in enumerate(alphas):
            if alpha == 0.0:
                cell = Text("■", style="bold red")
            elif alpha < 1.0:
                cell = Text(f"{alpha:.2f}", style="yellow")
            else:
                cell = Text("·", style="dim")
            if als is not None:
                cell.append(f" {als[layer][head]:.2f}", style="cyan")
            cells.append(cell)
        table.add_row(str(layer), *cells)
    return table


def spec_summary(spec: MaskSpec) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [("layers x heads", f"{spec.layers} x {spec.heads}"),
            ("window", f"{spec.window[0]}x{spec.window[1]}"),
            ("semantics", spec.semantics),
            ("masked heads", f"{spec.num_masked} of {spec.layers * spec.heads} hard"
                             + (", soft masks present" if spec.is_soft else "")),
            ("compact", spec.compact())]
    if spec.pattern != "window":
        rows.append(("pattern", f"{spec.pattern} (seed {spec.pattern_seed})"))
    rows += [(f"meta.{key}", str(value)) for key, value in spec.meta.items() if key not in ("als", "alpha_history")]
    for key, value in rows:
        table.add_row(key, value)
    return table


def trials_table(records, best=None) -> Table:
    from ..stats import format_mean_std

    from ..runs.reading import count_bars

    table = Table(title="trials (validation and test top-1 in %, mean ± std over seeds; ALS normalized: "
                        "0 uniform, 1 all in the window)")
    for column, justify in (("#", "right"), ("step", "left"), ("placement", "left"), ("per layer", "left"),
                            ("state", "left"), ("val top-1", "right"), ("test top-1", "right"),
                            ("norm. ALS", "right"), ("s", "right")):
        table.add_column(column, justify=justify, no_wrap=column in ("placement", "per layer", "val top-1"))
    for record in records:
        flat = [a for row in (record.normalized_als() or []) for a in row]
        state = record.state if record.duplicate_of is None else f"= {record.duplicate_of}"
        style = "bold green" if best is not None and record.number == best.number else None
        table.add_row(str(record.number), record.label, record.spec.label(), count_bars(record.spec), state,
                      format_mean_std(record.val_top1), format_mean_std(record.test_top1),
                      f"{sum(flat) / len(flat):+.3f}" if flat else "-", trial_time(record), style=style)
    return table


def trial_time(record) -> str:
    """Training seconds this run spent on the trial, and how many seeds the cache served."""
    if record.all_cached:
        return "cached"
    return f"{record.seconds:.0f}" + (f" ({record.cached} cached)" if record.cached else "")


def calibration_table(result: dict) -> Table:
    budgets = [f"{b}x" for b in result["budgets"]]
    by_budget = result.get("by_budget") or {}
    table = Table(title=f"calibration: validation top-1 (%), mean ± std over {len(result['seeds'])} seeds; "
                        "paired gap to none in brackets")
    table.add_column("placement")
    for budget in budgets:
        table.add_column(f"{by_budget.get(budget, {}).get('epochs', budget)} epochs", justify="right")
    for name, cells in result["placements"].items():
        row = []
        for budget in budgets:
            gap = (by_budget.get(budget, {}).get("paired_gaps") or {}).get(name)
            cell = f"{cells[budget]['mean'] * 100:.2f} ± {cells[budget]['std'] * 100:.2f}" if budget in cells else "-"
            row.append(cell + (f" ({gap * 100:+.2f})" if gap is not None else ""))
        table.add_row(name, *row)
    tau = result.get("kendall_tau")
    if tau is not None:
        stability = f"Kendall's tau {tau:+.2f} between the shortest and the longest budget"
    elif len(budgets) < 2:
        stability = "one budget, nothing to compare (--budgets 1,3 measures it)"
    else:
        stability = "no ranking to compare (every placement tied)"
    captions = [f"rank stability: {stability}"]
    for budget in budgets:
        stats = by_budget.get(budget)
        if stats:
            seconds = stats["seconds_per_trial"]  # one seed's training, as report.md says
            captions.append(f"{stats['epochs']} ep: noise {_pct(stats['noise'])} (paired {_pct(stats['paired_noise'])}),"
                            f" resolvable paired gap {_pct(stats['paired_resolvable_gap'])}, "
                            f"{'-' if seconds is None else round(seconds)} s per trained seed")
    table.caption = "\n".join(captions)
    return table


# Nine steps of matplotlib's viridis, low to high: the ALS colours of the paper's Figure 3.
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]


def als_heatmap_table(als, spec, title: str) -> Table:
    """Layers down, heads across, each cell coloured by its (normalized) ALS; hard-masked heads
    in bold. The colours span the values shown, so a proxy whose ALS stays low still shows
    which heads are the most local."""
    table = Table(title=title, show_edge=False, pad_edge=False, box=None)
    table.add_column("layer", justify="right", style="dim")
    for head in range(len(als[0])):
        table.add_column(f"h{head}", justify="center")
    low = min(min(row) for row in als)
    span = max(max(row) for row in als) - low or 1.0
    for layer, row in enumerate(als):
        cells = []
        for head, value in enumerate(row):
            shade = (value - low) / span
            colour = VIRIDIS[min(len(VIRIDIS) - 1, max(0, int(shade * len(VIRIDIS))))]
            ink = "black" if shade > 0.6 else "white"
            bold = " bold" if spec is not None and head in spec.masks[layer] else ""
            cells.append(Text(f" {value:+.2f} ", style=f"{ink}{bold} on {colour}"))
        table.add_row(str(layer), *cells)
    return table


def run_header(run) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    proxy = run.config.get("proxy") or {}
    grid.add_row("run", f"{run.name} ({run.path})")
    grid.add_row("strategy", f"{run.strategy}, {run.config.get('layers', '?')} layers x {run.config.get('heads', '?')} heads")
    grid.add_row("proxy", f"{run.dataset}, width {proxy.get('width')}, {proxy.get('epochs')} epochs, "
                          f"{run.config.get('seeds', '?')} seed(s)")
    grid.add_row("status", run.status)
    if run.calibration:
        grid.add_row("calibration", run.calibration.get("verdict", ""))
    return grid


def training_header(training) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    settings, path = training.settings, training.path
    grid.add_row("training", f"{path.name} ({path}), not a search run: maitsearch train wrote it")
    grid.add_row("model", f"{settings.get('model', '?')}, {settings.get('recipe', '?')} recipe, on "
                          f"{settings.get('data', '?')}")
    if training.spec is not None:
        grid.add_row("spec", training.spec.label())
    done, planned, best = len(training.metrics), settings.get("epochs", "?"), training.best_epoch()
    accuracy = (f"; val top-1 {_pct(training.metrics[-1].get('val_top1'))}% at the last, {_pct(best['val_top1'])}% "
                f"at the best (epoch {training.metrics.index(best) + 1})" if best is not None else "")
    grid.add_row("epochs", f"{done} of {planned} done{accuracy}")
    return grid


def training_next_step(training) -> str:
    """The command that goes on: the resume of an unfinished training, else the export."""
    path, planned = training.path, training.settings.get("epochs")
    if isinstance(planned, int) and len(training.metrics) < planned:
        return f"go on: maitsearch train -c {path / 'config.yaml'} --out {path} --resume"
    return f"export: maitsearch export {path} --onnx model.onnx"


def epochs_table(frame) -> Table:
    """A training's metrics, epochs counted from 1 as train counts them, each column to the
    digits that tell epochs apart."""
    counted = frame.assign(epoch=frame["epoch"] + 1) if "epoch" in frame else frame
    shown = people_frame(counted)
    return frame_table(shown, "epochs (top-1 in %)", {column: _epoch_digits(column) for column in shown.columns})


def _epoch_digits(column: str) -> str:
    if column.endswith("_pct"):
        return ".2f"
    if column.endswith("loss"):
        return ".4f"
    return ".0f" if column.endswith("_per_s") else "g"


def frame_table(frame, title: str, formats: dict[str, str] | None = None) -> Table:
    """``frame`` as a table; ``formats`` gives a column's float format (default ``g``)."""
    formats = formats or {}
    table = Table(title=title)
    for column in frame.columns:
        numeric = str(frame[column].dtype) in ("int64", "Int64", "float64")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column in ("placement", "bars"))
    for row in frame.itertuples(index=False):
        table.add_row(*[_cell(value, formats.get(column, "g")) for column, value in zip(frame.columns, row)])
    return table


def _cell(value, float_format: str = "g") -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


# Accuracy columns (fractions in DataFrames, CSV and JSON) and how people read them: percent.
PERCENT_COLUMNS = ("top1", "top1_std", "test_top1", "test_top1_std", "best_top1", "best_top1_std",
                   "baseline_top1", "baseline_top1_std", "gain",
                   "proxy_top1", "proxy_top1_std", "target_top1", "target_top1_std",  # a transfer study's
                   "train_top1", "val_top1", "val_top1_ema")  # a training's epochs
DISPLAY_ONLY = ("bars",)  # a sparkline for the terminal, not data


def machine_frame(frame):
    """For CSV and JSON: fractions as stored, every float rounded to 6 decimals (no
    0.005570999999999993), and no display-only columns."""
    frame = frame.drop(columns=[c for c in DISPLAY_ONLY if c in frame.columns])
    floats = [c for c in frame.columns if str(frame[c].dtype) == "float64"]
    return frame.assign(**{c: frame[c].round(6) for c in floats})


def people_frame(frame):
    """For markdown: accuracies in percent (columns renamed ``*_pct``), 2 decimals, as in the tables."""
    frame = machine_frame(frame)
    percent = [c for c in PERCENT_COLUMNS if c in frame.columns]
    frame = frame.assign(**{c: (frame[c] * 100).round(2) for c in percent})
    return frame.rename(columns={c: f"{c}_pct" for c in percent})


def markdown_table(frame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value).replace("|", "\\|") for value in row) + " |")
    return "\n".join(lines)


def _pct(mean, std=None) -> str:
    import pandas as pd

    if mean is None or pd.isna(mean):
        return "-"
    if std is None or pd.isna(std):
        return f"{mean * 100:.2f}"
    return f"{mean * 100:.2f} ± {std * 100:.2f}"


def runs_table(frame, title: str) -> Table:
    """The run list for humans: accuracies in % with their seed spread; a run that took every
    result from the trial cache (``Run.all_cached``) trained nothing, and its time says so."""
    import pandas as pd

    table = Table(title=title)
    for column, justify in (("run", "left"), ("strategy", "left"), ("data", "left"), ("LxH", "right"),
                            ("trials c/f/p", "right"), ("best val top-1", "right"), ("baseline", "right"),
                            ("gain", "right"), ("train time", "right"), ("status", "left")):
        table.add_column(column, justify=justify, no_wrap=column in ("run", "best val top-1", "baseline"))
    for row in frame.itertuples(index=False):
        gain = "-" if pd.isna(row.gain) else f"{row.gain * 100:+.2f}"
        table.add_row(row.name, row.strategy, row.dataset, row.shape,
                      f"{row.trials} ({row.complete}/{row.failed}/{row.pruned})",
                      _pct(row.best_top1, row.best_top1_std), _pct(row.baseline_top1, row.baseline_top1_std), gain,
                      _train_time(row), row.status,
                      style=None if str(row.status).startswith("ok") else "yellow")
    return table


def _train_time(row) -> str:
    import pandas as pd

    if row.all_cached:
        return "cached"
    return "-" if pd.isna(row.seconds) else f"{row.seconds / 60:.1f} min"  # a training does not record it


def transfer_table(result: dict) -> Table:
    """A transfer study's placements, proxy and target side by side, with their ranks."""
    from ..stats import format_mean_std

    table = Table(title=f"transfer {result['name']}: validation top-1 (%), mean ± std over {result['seeds']} seeds; "
                        "rank 1 the most accurate")
    for column, justify in (("placement", "left"), ("compact", "left"), ("proxy", "right"), ("rank", "right"),
                            ("target", "right"), ("rank ", "right")):
        table.add_column(column, justify=justify, no_wrap=column in ("compact", "proxy", "target"))
    for row in result["placements"]:
        marks = (" (pick)" if row["placement"] == result["proxy_pick"] else "") + (
            " (best)" if row["placement"] == result["target_best"] else "")
        table.add_row(row["placement"] + marks, row.get("compact", ""), format_mean_std(row["proxy"]["values"]),
                      f"{row['proxy']['rank']:g}", format_mean_std(row["target"]["values"]),
                      f"{row['target']['rank']:g}")
    return table
