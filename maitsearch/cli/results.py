"""maitsearch results: browse runs as tables, heatmaps and plots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import choice_message
from .app import app, console, err_console, fail

FORMATS = ("table", "csv", "markdown", "json")


def open_run(name: str, root: Path, storage: Optional[str]):
    from ..runs.reading import load_run, run_from_storage

    if storage:
        return from_storage(storage, run_from_storage, storage, name)
    path = Path(name) if Path(name).is_dir() else root / name
    if not path.is_dir():
        if not root.is_dir():
            fail(f"error: no run {name!r}: no folder {root} here (--results names where run folders live)")
        fail(f"error: no run {name!r} under {root} (`maitsearch results --results {root}` lists them)")
    return load_run(path)


def list_storage(storage: str) -> None:
    """Runs are read from a storage one at a time: say which it holds, in one line."""
    from ..runs.reading import runs_in_storage
    from ..runs.study_storage import redact

    held = from_storage(storage, runs_in_storage, storage)
    fail(f"error: --storage: name the run to read from it; {redact(storage)} holds "
         f"{', '.join(held) if held else 'no maitsearch runs'}")


def from_storage(storage: str, read, *args):
    """``read(*args)``, with Optuna's and the database driver's own errors (a server that is not
    there, a wrong password) as one line, the password hidden."""
    from ..errors import MaitsearchError
    from ..runs.study_storage import redact

    try:
        return read(*args)
    except MaitsearchError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the storage's driver raises
        fail(f"error: --storage {redact(storage)}: {redact(str(err).splitlines()[0])}")


def emit_frame(frame, fmt: str, title: str) -> None:
    """Write a DataFrame as csv or json (fractions, pandas' table schema keeps the dtypes) or
    markdown (percent, like the terminal tables)."""
    from .render import machine_frame, people_frame

    frame = people_frame(frame) if fmt in ("markdown", "table") else machine_frame(frame)
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(frame.to_json(orient="table", index=False, indent=1) + "\n")
    elif fmt == "markdown":
        from .render import markdown_table

        sys.stdout.write(markdown_table(frame) + "\n")
    else:
        from .render import frame_table

        console.print(frame_table(frame, title))


@app.command("results")
def results_command(
        runs: Optional[list[str]] = typer.Argument(None, help="Run names (or folders). None: list every run."),
        results: Path = typer.Option(Path("results"), help="Where run folders live."),
        sort: Optional[str] = typer.Option(None, help="Sort the run list by a column (prefix - for descending)."),
        strategy: Optional[str] = typer.Option(None, help="Only runs of this strategy."),
        dataset: Optional[str] = typer.Option(None, help="Only runs on this dataset."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv, markdown or json."),
        plot: bool = typer.Option(False, help="Write the run's figures as PNGs and embed them in report.md."),
        trial: Optional[int] = typer.Option(None, help="Show (and with --plot, draw) this trial's ALS and "
                                                         "similarity instead of the best's."),
        storage: Optional[str] = typer.Option(None, help="Read a run from its Optuna storage (no shared folder)."),
) -> None:
    """Browse runs: a list of runs, one run's trials, or several runs side by side."""
    from ..runs import list_runs

    if fmt not in FORMATS:
        fail(f"error: --format: {choice_message(fmt, FORMATS)}")
    figures = "--trial" if trial is not None else "--plot" if plot else None  # they draw one run's figures
    if figures and len(runs or ()) != 1:
        fail(f"error: {figures}: name exactly one run (figures are drawn per run)")
    if storage and not runs:
        list_storage(storage)
    if not runs:
        frame = list_runs(results)
        listed = len(frame)
        for flag, column, wanted in (("--strategy", "strategy", strategy), ("--dataset", "dataset", dataset)):
            if not wanted:
                continue
            present = sorted(frame[column].dropna().astype(str).unique())
            if present and wanted not in present:  # a typo, not an empty answer
                fail(f"error: {flag}: no run in {results} has {wanted!r}; they have {', '.join(present)}")
            frame = frame[frame[column] == wanted]
        if sort:
            column = sort.lstrip("-")
            if column not in frame.columns:
                fail(f"error: --sort: {choice_message(sort, list(frame.columns))}")
            frame = frame.sort_values(column, ascending=not sort.startswith("-"), na_position="last")
        frame = frame.reset_index(drop=True)
        if fmt == "table" and frame.empty:  # scripts asking for csv or json still get the empty frame
            where = f"{results}" if results.is_dir() else f"{results} (no such folder)"
            console.print(f"no runs in {where}{' that match' if listed else ''}; "
                          "maitsearch run --config quick starts one", markup=False)
        elif fmt == "table":
            from .render import runs_table

            console.print(runs_table(frame, f"runs in {results}"))
        else:
            emit_frame(frame, fmt, f"runs in {results}")
        return
    ignored = [flag for flag, value in (("--sort", sort), ("--strategy", strategy), ("--dataset", dataset)) if value]
    if ignored:
        fail(f"error: {ignored[0]}: sorts or filters the list of runs; leave out the run names to list them")
    opened = [open_run(name, results, storage) for name in runs]
    if len(opened) == 1 and opened[0].training is not None:
        if figures:
            fail(f"error: {figures}: {runs[0]} is a training (maitsearch train), not a search run: it has no "
                 "trials or figures")
        show_training(opened[0].training, fmt)
    elif len(opened) == 1:
        show_run(opened[0], fmt, plot, trial)
    else:
        compare_runs(opened, fmt)


def show_run(run, fmt: str, plot: bool, trial: int | None = None) -> None:
    from .render import als_heatmap_table, placement_grid, run_header

    if run.transfer is not None:
        show_transfer(run, fmt, plot, trial)
        return
    try:
        shown = run.best_record() if trial is None else run.record(trial)
    except KeyError as err:
        fail(f"error: {err.args[0]}")
    if fmt != "table":
        emit_frame(run.trials, fmt, run.name)
        return
    from .render import trials_table

    console.print(run_header(run))
    console.print(trials_table(run.records, run.best_record()))
    spec = run.best if trial is None else shown.spec
    if spec is not None:
        from rich.columns import Columns

        panels = [placement_grid(spec)]
        normalized = shown.normalized_als() if shown is not None else None
        if normalized:
            panels.insert(0, als_heatmap_table(normalized, spec, f"normalized ALS, trial {shown.number}"))
        console.print(Columns(panels, padding=(0, 4)))
    for line in run.comparisons():
        console.print(f"- {line}", markup=False)
    for problem in run.problems:
        err_console.print(f"warning: {problem}", markup=False)
    if plot:
        write_plots(run, trial)


def show_training(training, fmt: str) -> None:
    """A folder train wrote: what trained, and its accuracy epoch by epoch."""
    from .render import epochs_table, training_header, training_next_step

    if fmt != "table":
        emit_frame(training.frame, fmt, str(training.path))
        return
    console.print(training_header(training))
    if training.metrics:
        console.print(epochs_table(training.frame))
    console.print(training_next_step(training), markup=False, soft_wrap=True)
    for problem in training.problems:
        err_console.print(f"warning: {problem}", markup=False)


def show_transfer(run, fmt: str, plot: bool, trial: int | None) -> None:
    """A transfer study: its placements on both sides, how the rankings agree, and where its runs are."""
    from ..runs.transfer_report import draw_scatter, placements_frame, summary_lines
    from .render import transfer_table

    if trial is not None:
        fail(f"error: --trial: {run.name} is a transfer study, whose trials are in its runs: "
             f"maitsearch results proxy --results {run.path} --trial {trial} (or target)")
    if fmt != "table":
        emit_frame(placements_frame(run.transfer), fmt, run.name)
        return
    if plot:
        console.print(f"scatter: {draw_scatter(run.path, run.transfer)}", markup=False)
    console.print(transfer_table(run.transfer))
    for line in summary_lines(run.transfer):
        console.print(f"- {line}", markup=False)
    console.print(f"verdict: {run.transfer.get('verdict', '')}", markup=False)
    console.print(f"its runs: maitsearch results --results {run.path}; report: {run.path / 'report.md'}", markup=False)


def write_plots(run, trial: int | None = None) -> None:
    from ..runs.report import embed_figures

    figures = run.plot_all(trial)
    made = {name: path for name, path in figures.items() if isinstance(path, Path)}
    for name, outcome in figures.items():
        console.print(f"{name}: {outcome}" if isinstance(outcome, Path) else f"{name}: skipped ({outcome})",
                      markup=False)
    if made and (run.path / "report.md").exists():
        embed_figures(run.path / "report.md", made)
        console.print(f"report: {run.path / 'report.md'}", markup=False)


def compare_runs(runs, fmt: str) -> None:
    import pandas as pd

    from ..runs.reading import RUN_DTYPES

    frame = pd.DataFrame([run.summary() for run in runs], columns=list(RUN_DTYPES)).astype(RUN_DTYPES)
    for warning in comparison_warnings(runs):
        err_console.print(f"warning: {warning}", markup=False)
    if fmt == "table":
        from .render import runs_table

        console.print(runs_table(frame, "runs side by side"))
    else:
        emit_frame(frame, fmt, "runs side by side")


def comparison_warnings(runs) -> list[str]:
    """What makes the runs' numbers incomparable, field by field: dataset, proxy settings,
    seeds, shape. A proxy option newer than a run's file counts at the value it had before it
    existed (``DIGEST_NEUTRAL``), as run names and the trial cache count it."""
    from ..config import DIGEST_NEUTRAL

    warnings = [f"{run.name} is a transfer study, with a proxy and a target of its own: `maitsearch results "
                f"--results {run.path}` sets its two runs side by side" for run in runs if run.transfer is not None]
    runs = [run for run in runs if run.transfer is None]  # it has no one config to hold against the others
    if not runs:
        return warnings
    first = runs[0]
    for run in runs[1:]:
        fields = []
        for key in ("layers", "heads", "seeds"):
            if run.config.get(key) != first.config.get(key):
                fields.append(f"{key} {first.config.get(key)!r} vs {run.config.get(key)!r}")
        ours, theirs = ({**DIGEST_NEUTRAL, **(side.config.get("proxy") or {})} for side in (first, run))
        for key in sorted(set(ours) | set(theirs)):
            if key not in ("layers", "heads") and ours.get(key) != theirs.get(key):
                fields.append(f"proxy.{key} {ours.get(key)!r} vs {theirs.get(key)!r}")
        if fields:
            warnings.append(f"{first.name} and {run.name} differ in {'; '.join(fields)}: their accuracies are "
                            "not comparable")
    return warnings
