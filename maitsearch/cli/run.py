"""maitsearch run: search mask placements."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from .app import app, console, parse_window


def build_config(config: Optional[str], *, layers=None, heads=None, strategy=None, data=None, trials=None,
                 seeds=None, epochs=None, jobs=None, storage=None, objectives=None, space=None, sampler=None,
                 pruner=None, round_=None, semantics=None, window=None, max_failures=None, keep_checkpoints=None,
                 baselines=None, cache=None, data_dir=None, device=None, width=None):
    """The preset (or a run's search.yaml, or the built-in default) with the given flags on top;
    a flag left at None keeps the preset's value."""
    from ..config import SearchConfig, load_config

    base = load_config(config) if config else SearchConfig()
    top = {k: v for k, v in dict(layers=layers, heads=heads, strategy=strategy, trials=trials, seeds=seeds,
                                  jobs=jobs, semantics=semantics, max_failures=max_failures,
                                  keep_checkpoints=keep_checkpoints, cache=cache).items() if v is not None}
    if window is not None:
        top["window"] = list(parse_window(window))
    if baselines is not None:
        top["baselines"] = list(dict.fromkeys(name.strip() for name in baselines.split(",") if name.strip()))
    proxy = {k: v for k, v in dict(data=data, epochs=epochs, data_dir=data_dir, device=device, width=width).items()
             if v is not None}
    if data is not None:  # a derived task comes with its own canvas and patch grid
        from ..data import proxy_shape

        proxy = {**proxy_shape(data), **proxy}
    optuna = {k: v for k, v in dict(storage=storage, space=space, sampler=sampler, pruner=pruner).items()
              if v is not None}
    if objectives is not None:
        optuna["objectives"] = [o.strip() for o in objectives.split(",") if o.strip()]
    soft = {"round": round_} if round_ is not None else {}
    return base.replace(**top, proxy=dataclasses.replace(base.proxy, **proxy),
                        optuna=dataclasses.replace(base.optuna, **optuna), soft=dataclasses.replace(base.soft, **soft))


# Options that run and calibrate share, spelled once.
LAYERS = typer.Option(None, "--layers", "-L", min=1, help="Transformer blocks (default 24).")
HEADS = typer.Option(None, "--heads", "-H", min=1, help="Heads per block (default 3).")
WIDTH = typer.Option(None, "--width", min=1, help="Proxy embedding width, a multiple of the heads (default 48: 16 "
                                                  "per head at 3 heads).")
CONFIG = typer.Option(None, "--config", "-c", help="A preset in searches/ or a YAML file.")
RESULTS = typer.Option(Path("results"), help="Where run folders live.")
DATA_DIR = typer.Option(None, help="Where torchvision sets live (with --data cifar10 and the like).")
DOWNLOAD = typer.Option(False, help="Download a torchvision set into --data-dir first.")
CACHE = typer.Option(None, "--cache", help="Trial cache folder shared by runs (default: $MAITSEARCH_CACHE, else "
                                           ".maitsearch-cache beside --results).")
DEVICE = typer.Option(None, "--device", help="auto (every GPU, else the CPU), cpu, cuda, or GPUs such as cuda:0,1: "
                                             "one worker per GPU, --jobs N round-robin (default: the config's, auto).")


@app.command("run")
def run_command(
        layers: Optional[int] = LAYERS,
        heads: Optional[int] = HEADS,
        width: Optional[int] = WIDTH,
        strategy: Optional[str] = typer.Option(None, help="als (default), optuna, soft, supernet (score thousands "
                                                           "of placements with one weight-sharing proxy), or presets "
                                                           "(train the --baselines side by side)."),
        data: Optional[str] = typer.Option(None, help="Proxy data: the default task, digits, a torchvision set or a folder."),
        trials: Optional[int] = typer.Option(None, min=1, help="Optuna: trials in the study over all workers."),
        seeds: Optional[int] = typer.Option(None, min=1, help="Seeds per placement; tables show mean ± std."),
        name: Optional[str] = typer.Option(None, help="Run name (default: derived from the config, so re-running resumes)."),
        config: Optional[str] = CONFIG,
        epochs: Optional[int] = typer.Option(None, min=1, help="Proxy epochs per trial."),
        jobs: Optional[int] = typer.Option(None, min=1, help="Trials trained at once on this machine (default: one "
                                                            "per GPU, else per free core; one for Optuna's own "
                                                            "study.db)."),
        storage: Optional[str] = typer.Option(None, help="Optuna storage: journal:PATH or postgresql://... "
                                                          "(or $MAITSEARCH_STORAGE; default: the run's own "
                                                          "study.db, or study.journal for several jobs)."),
        objectives: Optional[str] = typer.Option(None, help="Optuna: accuracy[,attention_cost]."),
        space: Optional[str] = typer.Option(None, help="Optuna space: counts, full or blocks."),
        sampler: Optional[str] = typer.Option(None, help="Optuna sampler: tpe, nsga2, gp or random."),
        pruner: Optional[str] = typer.Option(None, help="Optuna pruner: median, hyperband or none."),
        round_: Optional[bool] = typer.Option(None, "--round/--no-round", help="Soft: round in-between alphas to hard "
                                              "or unmasked (the default), or keep them soft."),
        semantics: Optional[str] = typer.Option(None, help="paper (default) or local."),
        window: Optional[str] = typer.Option(None, help="Window ROWSxCOLS, e.g. 3x3."),
        max_failures: Optional[int] = typer.Option(None, min=0, help="Failed trials tolerated."),
        keep_checkpoints: Optional[bool] = typer.Option(None, "--keep-checkpoints", help="Save each trial's "
                                                        "first-seed weights (for similarity plots)."),
        baselines: Optional[str] = typer.Option(None, help="Placements trained alongside: presets (none,sch1,"
                                                           "sch2@3x5), spec YAML files or compact text (3310) "
                                                           "('' for none)."),
        results: Path = RESULTS,
        cache: Optional[str] = CACHE,
        data_dir: Optional[str] = DATA_DIR,
        download: bool = DOWNLOAD,
        device: Optional[str] = DEVICE,
) -> None:
    """Search mask placements and write results/<run>/ (resumable: re-run the same command)."""
    from ..errors import ConfigError
    from ..runs import validate_run_name

    if name is not None:
        validate_run_name(name)
    search = build_config(config, layers=layers, heads=heads, strategy=strategy, data=data, trials=trials,
                          seeds=seeds, epochs=epochs, jobs=jobs, storage=storage, objectives=objectives,
                          space=space, sampler=sampler, pruner=pruner, round_=round_, semantics=semantics,
                          window=window, max_failures=max_failures, keep_checkpoints=keep_checkpoints,
                          baselines=baselines, cache=cache, data_dir=data_dir, device=device, width=width)
    if search.optuna.storage and search.strategy != "optuna":
        raise ConfigError(f"--storage: only the optuna strategy keeps a study; this run uses {search.strategy}")
    given = {"--trials": trials, "--space": space, "--sampler": sampler, "--objectives": objectives,
             "--pruner": pruner, "--round/--no-round": round_}
    for flag, value in given.items():
        if value is not None and search.strategy not in READ_BY[flag]:
            raise ConfigError(f"{flag}: only the {' and '.join(READ_BY[flag])} strateg"
                              f"{'ies read' if len(READ_BY[flag]) > 1 else 'y reads'} it; this run uses "
                              f"{search.strategy} (--strategy)")
    search_and_render(search, results, name, download=download)


# The flags that only some strategies read: given to another one, they would change nothing.
READ_BY = {"--trials": ("optuna",), "--space": ("optuna", "supernet"), "--sampler": ("optuna", "supernet"),
           "--objectives": ("optuna", "supernet"), "--pruner": ("optuna",), "--round/--no-round": ("soft",)}


@app.command("confirm")
def confirm_command(
        run: str = typer.Argument(..., help="A finished run in --results."),
        top: int = typer.Option(3, min=1, help="Its most accurate placements to retrain, besides its baselines "
                                               "and its answer."),
        seeds: Optional[int] = typer.Option(None, min=1, help="Fresh seeds (default: as many as the run had, "
                                                              "at least 3)."),
        name: Optional[str] = typer.Option(None, help="Run name (default: RUN-confirm, so re-running resumes)."),
        first_seed: Optional[int] = typer.Option(None, min=0, help="First fresh seed (default: the one after the "
                                                                   "run's own); runs confirmed on one share them."),
        also: Optional[str] = typer.Option(None, help="More placements to retrain beside the run's baselines: "
                                                      "presets, spec files or compact text, e.g. sch2,all."),
        jobs: Optional[int] = typer.Option(None, min=1, help="Trials trained at once on this machine."),
        results: Path = RESULTS,
        cache: Optional[str] = CACHE,
        device: Optional[str] = DEVICE,
) -> None:
    """Retrain a run's best placements, baselines and answer on seeds it never trained.

    The best is chosen among them there: a best of many noisy means is optimistic on its own
    seeds."""
    from ..runs import RunStore, validate_run_name
    from ..search.confirm import confirmation_config

    extra = tuple(name.strip() for name in (also or "").split(",") if name.strip())
    search = confirmation_config(RunStore(results, run), top=top, seeds=seeds, first_seed=first_seed,
                                 also=extra)  # RunStore checks the name
    search = search.replace(**{k: v for k, v in dict(jobs=jobs, cache=cache).items() if v is not None})
    if device is not None:
        search = search.replace(proxy=search.proxy.replace(device=device))
    search_and_render(search, results, validate_run_name(name or f"{run}-confirm"))


def search_and_render(search, results: Path, name: Optional[str], *, download: bool = False) -> None:
    """Check every setting before a progress bar or a folder exists, then run with the live view."""
    from ..data import load_data
    from ..search import run_search
    from ..search.checks import check_config
    from .progress import RunView, make_progress

    check_config(search, results)
    dataset = load_data(search.proxy.data, image_size=search.proxy.image_size, data_dir=search.proxy.data_dir,
                        download=download, train_copies=search.proxy.train_copies)
    with make_progress(console) as progress:
        summary = run_search(search, results_root=results, name=name, data=dataset,
                             on_event=RunView(console, progress))
    render_summary(summary, search, results)


def render_summary(summary, config, results: Path) -> None:
    """The trials, the strategy's notes, and the answer against the baselines: a user sees
    here, not only in report.md, when the strategy's answer lost to a hand-written placement."""
    from ..runs.report import comparisons, find_calibration
    from .render import trials_table

    console.print(trials_table(summary.records, summary.best))
    for note in summary.notes:
        console.print(f"- {note}", markup=False)
    for line in comparisons(summary.records, summary.best, summary.answer, find_calibration(results, config),
                            strategy=config.strategy):
        console.print(f"- {line}", markup=False)
    if summary.best is not None:
        console.print(f"best: trial {summary.best.number} ({summary.best.label}) -> {summary.path / 'best.yaml'}",
                      markup=False)
    cached = sum(r.cached for r in summary.records)
    console.print(f"report: {summary.path / 'report.md'}  ({summary.trained} trained, {summary.reused} reused, "
                  f"{summary.resumed} from the run folder, {cached} seed(s) from the trial cache, "
                  f"{summary.seconds:.0f} s)", markup=False)


@app.command("calibrate")
def calibrate_command(
        layers: Optional[int] = LAYERS,
        heads: Optional[int] = HEADS,
        width: Optional[int] = WIDTH,
        data: Optional[str] = typer.Option(None, help="Proxy data (default: the default proxy's task)."),
        config: Optional[str] = CONFIG,
        seeds: Optional[int] = typer.Option(None, min=2, help="Seeds per placement (default: the config's when it "
                                                              "has 2 or more, else 3: noise needs at least 2)."),
        budgets: str = typer.Option("1", help="Budgets as multiples of the proxy's epochs, e.g. 1,3."),
        epochs: Optional[int] = typer.Option(None, min=1, help="Proxy epochs at budget 1."),
        jobs: Optional[int] = typer.Option(None, min=1, help="Trials trained at once (one process each)."),
        name: Optional[str] = typer.Option(None, help="Run name (default: derived from the config)."),
        fidelity: bool = typer.Option(False, "--fidelity", help="Also train a supernet (the config's supernet "
                                                                "section) and measure Kendall's tau between its scores "
                                                                "and stand-alone means, in a run NAME-supernet."),
        results: Path = RESULTS,
        cache: Optional[str] = CACHE,
        data_dir: Optional[str] = DATA_DIR,
        download: bool = DOWNLOAD,
        device: Optional[str] = DEVICE,
) -> None:
    """Train none/sch1/sch2/all/random with several seeds: can this proxy rank placements?"""
    from ..data import load_data
    from ..errors import ConfigError
    from ..runs import validate_run_name
    from ..search import calibrate
    from ..search.calibrate import REFERENCES, fidelity_config
    from ..search.checks import check_config
    from .progress import RunView, make_progress
    from .render import calibration_table

    if name is not None:
        validate_run_name(name)
    search = build_config(config, layers=layers, heads=heads, data=data, seeds=seeds, epochs=epochs, jobs=jobs,
                          cache=cache, data_dir=data_dir, device=device, width=width)
    if search.seeds < 2:  # a one-seed preset (quick) measures no noise: calibrate it as the default does
        search = search.replace(seeds=3)
    try:
        parsed = tuple(int(b) for b in budgets.split(","))
    except ValueError:
        parsed = ()
    if not parsed or min(parsed) < 1:
        raise ConfigError(f"--budgets {budgets!r}: expected whole multiples of the epochs, such as 1,3")
    check_config(search.replace(strategy="presets", baselines=list(REFERENCES)), results)  # what it trains
    if fidelity:
        check_config(fidelity_config(search), results)
    dataset = load_data(search.proxy.data, image_size=search.proxy.image_size, data_dir=search.proxy.data_dir,
                        download=download, train_copies=search.proxy.train_copies)
    with make_progress(console) as progress:
        outcome = calibrate(search, budgets=parsed, results_root=results, name=name, data=dataset,
                            on_event=RunView(console, progress), fidelity=fidelity)
    from ..runs.report import mechanism_lines

    console.print(calibration_table(outcome.result))
    for stats in outcome.result["by_budget"].values():
        console.print(f"verdict at {stats['epochs']} epochs: {stats['verdict']}", markup=False)
    for warning in outcome.result.get("warnings") or []:
        console.print(f"warning: {warning}", markup=False, style="yellow")
    for line in mechanism_lines(outcome.result):
        console.print(f"mechanism: {line}", markup=False)
    if outcome.result.get("fidelity"):
        from ..runs.report import fidelity_sentence

        found = outcome.result["fidelity"]
        console.print(f"supernet: {fidelity_sentence(found)} (run {found['run']})", markup=False)
    console.print(f"calibration: {outcome.path}", markup=False)
