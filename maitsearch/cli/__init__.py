"""The ``maitsearch`` command line: thin Typer commands over the library.

Heavy modules (torch, timm, optuna, pandas) are imported inside the commands that need them,
and known errors end as one line on stderr with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search where locality-masked attention heads help a vision transformer (MaiT).")
spec_app = typer.Typer(no_args_is_help=True, help="Check, show and create mask spec YAML files.")
app.add_typer(spec_app, name="spec")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr."""
    err_console.print(message, markup=False)
    raise typer.Exit(code)


def load_spec_or_fail(path: Path):
    from ..spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as err:
        fail(str(err))


@spec_app.command("check")
def spec_check(files: list[Path] = typer.Argument(..., help="Mask spec YAML files.")) -> None:
    """Validate spec files: one line per file, exit code 2 if any is malformed."""
    from ..spec import SpecError, load_spec

    bad = 0
    for path in files:
        try:
            spec = load_spec(path)
        except SpecError as err:
            err_console.print(str(err), markup=False)
            bad += 1
            continue
        console.print(f"{path}: ok: {spec.layers}x{spec.heads}, {spec.num_masked} hard-masked heads, "
                      f"compact {spec.compact()}", markup=False)
    if bad:
        raise typer.Exit(2)


@spec_app.command("show")
def spec_show(file: Path = typer.Argument(..., help="A mask spec YAML file.")) -> None:
    """Pretty-print a spec with its placement grid (and ALS, when the spec carries it)."""
    from .render import placement_grid, spec_summary

    spec = load_spec_or_fail(file)
    console.print(spec_summary(spec))
    als = spec.meta.get("als")
    console.print(placement_grid(spec, als if _als_fits(als, spec) else None))


@spec_app.command("preset")
def spec_preset(
        name: str = typer.Argument(..., help="none, sch1, sch2, all or random."),
        layers: int = typer.Option(..., "--layers", "-L", min=1),
        heads: int = typer.Option(..., "--heads", "-H", min=1),
        window: str = typer.Option("3x3", help="Window rows x cols, odd sizes."),
        semantics: str = typer.Option("paper", help="paper or local."),
        seed: int = typer.Option(0, help="Seed of the random preset's masks."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Write one of the paper's reference placements as a spec."""
    from ..spec import preset

    try:
        spec = preset(name, layers, heads, seed=seed, window=parse_window(window), semantics=semantics)
    except ValueError as err:
        fail(f"error: {err}")
    if output is None:
        sys.stdout.write(spec.to_yaml())
    else:
        spec.save(output)
        console.print(f"wrote {output}", markup=False)


def parse_window(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected ROWSxCOLS such as 3x3, got {text!r}") from None
    return rows, cols


def _als_fits(als, spec) -> bool:
    return isinstance(als, list) and len(als) == spec.layers and all(
        isinstance(row, list) and len(row) == spec.heads for row in als)


def main() -> None:
    app()
