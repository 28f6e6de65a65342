"""The Typer app and what every command shares: consoles and one-line failures."""

from __future__ import annotations

import signal
import sys
import threading

import typer
from rich.console import Console
from typer.core import TyperGroup

from ..errors import MaitsearchError

try:  # typer 0.26 and later vendor click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors


# Typer turns any KeyboardInterrupt into exit code 130; this tells SIGTERM's apart (exit 143).
_SIGTERM_RECEIVED = threading.Event()

_SEARCH_KEPT = "every finished trial is saved; run the same command again to go on"
KEPT_ON_INTERRUPT = {  # what a stopped command leaves, and how to go on; others keep nothing worth a line
    "run": _SEARCH_KEPT, "calibrate": _SEARCH_KEPT, "confirm": _SEARCH_KEPT, "transfer": _SEARCH_KEPT,
    "train": "every finished epoch is in the --out folder's checkpoint.pt; run the same command with --resume "
             "to go on",
}


def _stop_on_sigterm(signum, frame) -> None:
    """``kill``, ``timeout`` or a scheduler's SIGTERM stops a command as Ctrl-C does, and takes
    its worker processes with it first: a search started under nohup or a launcher has workers
    outside the terminal's process group, so nothing else stops them, and an orphaned worker
    trains on (holding its GPU) until its seed ends."""
    import multiprocessing

    _SIGTERM_RECEIVED.set()
    for child in multiprocessing.active_children():
        child.terminate()
    raise KeyboardInterrupt  # unwinds as Ctrl-C does: every ``finally`` runs


class _OneLineErrors(TyperGroup):
    """Every mistake ends as one line on stderr and exit code 2: a library ``MaitsearchError``
    (the one place the CLI catches them) and a bad flag alike. Ctrl-C says what was kept and
    exits 130; SIGTERM the same, exiting 143."""

    interrupted_command: str | None = None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MaitsearchError as err:
            fail(error_line(err))
        except KeyboardInterrupt:
            self.interrupted_command = ctx.invoked_subcommand
            raise

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        # only the main thread may set handlers; the previous one comes back for in-process callers
        own = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if own else None
        try:
            self._main_with_one_line_errors(*args, **kwargs)
        finally:
            if own:
                signal.signal(signal.SIGTERM, previous)

    def _main_with_one_line_errors(self, *args, **kwargs):
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as err:
            err.show()
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:  # a bad flag or value
            err_console.print(f"error: {_flag_message(err)}", markup=False)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            code = 130
        if code == 130:
            kept = KEPT_ON_INTERRUPT.get(self.interrupted_command)
            err_console.print(f"\ninterrupted{f': {kept}' if kept else ''}", markup=False)
            code = 143 if _SIGTERM_RECEIVED.is_set() else 130
        sys.exit(code if isinstance(code, int) else 0)


def _flag_message(err) -> str:
    """Click's message on one line, led by the flag: ``--layers: Input should be ...``."""
    message = " ".join(err.format_message().split())
    param = getattr(err, "param", None)
    if isinstance(err, click_errors.BadParameter) and param is not None and getattr(param, "opts", None):
        return f"{max(param.opts, key=len)}: {message.split(': ', 1)[-1]}"
    return message


def error_line(err: MaitsearchError) -> str:
    """``error: <the one line>``; storage passwords never reach the terminal."""
    from ..runs.study_storage import redact

    return f"error: {redact(str(err))}"


app = typer.Typer(cls=_OneLineErrors, add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
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


def unwrap_help(group: typer.Typer) -> None:
    """Give every command of ``group`` its docstring with each paragraph on one line. Typer prints
    a docstring's later paragraphs with the source's line breaks, so a sentence wrapped at 100
    columns in the code would break mid-line in ``--help``."""
    import inspect

    for command in group.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            paragraphs = inspect.cleandoc(command.callback.__doc__).split("\n\n")
            command.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
    for subgroup in group.registered_groups:
        unwrap_help(subgroup.typer_instance)


# Piped output gets 160 columns rather than rich's 80, so tables of 24-layer placements fit.
console = Console(soft_wrap=True, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr."""
    err_console.print(message, markup=False)
    raise typer.Exit(code)


def check_output_path(path, flag: str = "--output") -> None:
    """An output file goes into a folder that exists (a typo must not create folders elsewhere),
    and is not itself a folder."""
    from pathlib import Path

    from ..errors import ConfigError

    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: a folder; name the file to write in it")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} {path}: folder {path.parent} does not exist")


def parse_window(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(f"--window {text!r}: expected ROWSxCOLS such as 3x3") from None
    return rows, cols


def als_fits(als, spec) -> bool:
    return isinstance(als, list) and len(als) == spec.layers and all(
        isinstance(row, list) and len(row) == spec.heads for row in als)
