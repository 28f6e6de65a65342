"""The Typer app and what every command shares: consoles and one-line failures."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search where locality-masked attention heads help a vision transformer (MaiT).")
spec_app = typer.Typer(no_args_is_help=True, help="Check, show and create mask spec YAML files.")
app.add_typer(spec_app, name="spec")

# Piped output gets 160 columns rather than rich's 80, so tables of 24-layer placements fit.
console = Console(soft_wrap=True, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr."""
    err_console.print(message, markup=False)
    raise typer.Exit(code)


def load_spec_or_fail(path):
    from ..spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as err:
        fail(str(err))


def parse_window(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected ROWSxCOLS such as 3x3, got {text!r}") from None
    return rows, cols


def als_fits(als, spec) -> bool:
    return isinstance(als, list) and len(als) == spec.layers and all(
        isinstance(row, list) and len(row) == spec.heads for row in als)
