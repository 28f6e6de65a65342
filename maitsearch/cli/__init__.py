"""The ``maitsearch`` command line: thin Typer commands over the library.

Heavy modules (optuna, pandas, matplotlib) are imported inside the commands that need them,
and known errors end as one line on stderr with exit code 2.
"""

from __future__ import annotations

from . import cache, export, results, run, spec, train, transfer  # noqa: F401  (each module registers its commands)
from .app import app, unwrap_help

unwrap_help(app)


def main() -> None:
    app()
