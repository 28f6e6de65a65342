"""maitsearch transfer: does a proxy's ranking of placements carry to a target?"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console
from .run import CACHE, DEVICE, RESULTS


@app.command("transfer")
def transfer_command(
        proxy: str = typer.Option(..., "--proxy", help="The proxy: a preset in searches/ or a YAML file."),
        target: str = typer.Option(..., "--target", help="The target: a preset or a YAML file (any width, depth, "
                                                         "data, grid or epochs)."),
        placements: Optional[str] = typer.Option(None, help="Placements trained on both sides: presets, spec "
                                                            "files or compact text, comma-separated (default: "
                                                            "none,sch1,sch2,all,random)."),
        from_run: Optional[str] = typer.Option(None, "--from", help="A finished run in --results: add its answer "
                                                                    "and its --top most accurate placements."),
        top: Optional[int] = typer.Option(None, min=1, help="With --from: how many of the run's most accurate "
                                                            "placements (default 3)."),
        seeds: Optional[int] = typer.Option(None, min=1, help="Paired seeds per placement on each side (default: "
                                                              "the proxy config's; at least 2)."),
        name: Optional[str] = typer.Option(None, help="Study folder name (default: transfer-<target>, so re-running "
                                                      "resumes)."),
        jobs: Optional[int] = typer.Option(None, min=1, help="Trials trained at once on this machine."),
        results: Path = RESULTS,
        cache: Optional[str] = CACHE,
        device: Optional[str] = DEVICE,
) -> None:
    """Does a proxy rank placements as a bigger target does? Train the same ones on both.

    Paired seeds on both sides; results/<name>/ holds proxy/, target/ and report.md (Kendall's
    tau, the proxy's pick against the target's best, a verdict)."""
    from ..data import load_data
    from ..events import RunStarted
    from ..runs.transfer_report import SIDES, summary_lines
    from ..search.transfer import plan_transfer, run_transfer
    from .progress import RunView, make_progress

    listed = placements.split(",") if placements is not None else None
    plan = plan_transfer(proxy, target, placements=listed, from_run=from_run, top=top, seeds=seeds, name=name,
                         results_root=results, jobs=jobs, cache=cache, device=device)
    data = {side: load_data(config.proxy.data, image_size=config.proxy.image_size, data_dir=config.proxy.data_dir,
                            train_copies=config.proxy.train_copies)
            for side, config in plan.configs.items()}
    console.print(f"transfer {plan.name}: {len(plan.placements)} placements x {plan.configs['proxy'].seeds} seeds "
                  f"on {plan.sources['proxy']} (proxy) and {plan.sources['target']} (target), in {plan.folder}",
                  markup=False)
    with make_progress(console) as progress:
        views = {side: RunView(console, progress) for side in SIDES}
        side = "proxy"

        def on_event(event) -> None:  # each side's run gets its own live view
            nonlocal side
            if isinstance(event, RunStarted):
                side = event.name
            views[side](event)

        outcome = run_transfer(plan, data=data, on_event=on_event)
    from .render import transfer_table

    console.print(transfer_table(outcome.result))
    for line in summary_lines(outcome.result):
        console.print(f"- {line}", markup=False)
    console.print(f"verdict: {outcome.result['verdict']}", markup=False)
    counts = "; ".join(f"{side}: {s.trained} trained, {s.resumed} from its run folder, "
                       f"{sum(r.cached for r in s.records)} seed(s) from the trial cache"
                       for side, s in outcome.summaries.items())
    console.print(f"report: {outcome.report}  ({counts})", markup=False)
