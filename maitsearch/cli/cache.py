"""maitsearch cache list | clear: the trial cache shared by every run on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .app import app, console, err_console

cache_app = typer.Typer(no_args_is_help=True, help="See or empty the trial cache shared by all runs.")
app.add_typer(cache_app, name="cache")

CACHE = typer.Option(None, "--cache", help="The cache folder (default: $MAITSEARCH_CACHE, else "
                                           ".maitsearch-cache beside --results).")
RESULTS = typer.Option(Path("results"), help="Where run folders live (the default cache sits beside it).")


@cache_app.command("list")
def cache_list(cache: Optional[Path] = CACHE, results: Path = RESULTS) -> None:
    """One row per cached (placement, seed): what it is and what it scored."""
    from rich.table import Table

    from ..runs.cache import cache_folder

    store = _existing(cache_folder(results, cache))
    entries, problems = store.entries()
    for problem in problems:
        err_console.print(f"warning: {problem}", markup=False)
    if not entries:
        console.print(f"trial cache {store.folder}: empty", markup=False)
        return
    table = Table(title=f"trial cache {store.folder}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    for column in ("placement", "data", "L x H", "epochs", "seed", "val top-1 (%)", "s", "age"):
        table.add_column(column, justify="left" if column in ("placement", "data") else "right",
                         no_wrap=column == "placement")
    now = time.time()
    for entry in entries:
        proxy, result = entry.key.get("proxy", {}), entry.result
        placement = _placement(entry.key.get("placement", "?"))
        table.add_row(placement, str(proxy.get("data", "?")), f"{proxy.get('layers', '?')} x {proxy.get('heads', '?')}",
                      str(proxy.get("epochs", "?")), str(proxy.get("seed", "?")),
                      "-" if result.val_top1 is None else f"{result.val_top1 * 100:.2f}", f"{result.seconds:.0f}",
                      _age(now - entry.created))
    console.print(table)


@cache_app.command("clear")
def cache_clear(cache: Optional[Path] = CACHE, results: Path = RESULTS) -> None:
    """Remove every cached result (runs keep their own trial files; nothing else is touched)."""
    from ..runs.cache import cache_folder

    store = _existing(cache_folder(results, cache))
    removed = store.clear()
    console.print(f"removed {removed} cached result(s) from {store.folder}", markup=False)


def _existing(folder: Path):
    """The cache in ``folder``; a file there is an error rather than an empty cache."""
    from ..errors import ConfigError
    from ..runs.cache import TrialCache

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"trial cache {folder}: a file, not a folder")
    return TrialCache(folder)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _placement(key: str) -> str:
    """The placement with what sets it apart from a plain 3x3 paper mask: a random pattern, soft
    heads, another window or semantics (two rows of 111... can be different experiments)."""
    compact, *settings = key.split("/")
    extra = ["soft" if ";" in part else part for part in settings if part not in ("w3x3", "paper")]
    return " ".join([compact, *extra])
