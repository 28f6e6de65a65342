"""The ``maitsearch`` command line: thin Typer commands over the library.

Heavy modules (optuna, pandas, matplotlib) are imported inside the commands that need them,
and known errors end as one line on stderr with exit code 2.
"""

from __future__ import annotations

# Each module registers its commands on import, and --help lists them in that order: the searches
# first, then reading their results, using an answer, and the tools.
from . import run, transfer, results, export, train, spec, cache  # noqa: F401  isort: skip
from .app import app, unwrap_help

unwrap_help(app)


def main() -> None:
    app()
