"""The Typer app and what every command shares: consoles and one-line failures."""

from __future__ import annotations

import typer
from rich.console import Console
from typer.core import TyperGroup

from ..errors import MaitsearchError


class _OneLineErrors(TyperGroup):
    """Every command that raises a ``MaitsearchError`` ends with its one line and exit code 2:
    the one place the CLI catches library errors."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MaitsearchError as err:
            fail(error_line(err))


def error_line(err: MaitsearchError) -> str:
    """``error: <the one line>``; storage passwords never reach the terminal."""
    from ..runs.study_storage import redact

    return f"error: {redact(str(err))}"


app = typer.Typer(cls=_OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search where locality-masked attention heads help a vision transformer (MaiT).")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"maitsearch {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")) -> None:
    """Search where locality-masked attention heads help a vision transformer (MaiT)."""


spec_app = typer.Typer(no_args_is_help=True, help="Check, show and create mask spec YAML files.")
app.add_typer(spec_app, name="spec")

# Piped output gets 160 columns rather than rich's 80, so tables of 24-layer placements fit.
console = Console(soft_wrap=True, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr."""
    err_console.print(message, markup=False)
    raise typer.Exit(code)


def parse_window(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected ROWSxCOLS such as 3x3, got {text!r}") from None
    return rows, cols


def als_fits(als, spec) -> bool:
    return isinstance(als, list) and len(als) == spec.layers and all(
        isinstance(row, list) and len(row) == spec.heads for row in als)
