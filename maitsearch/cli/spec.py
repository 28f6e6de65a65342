"""maitsearch spec check | show | preset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from .app import als_fits, check_output_path, console, err_console, parse_window, spec_app


@spec_app.command("check")
def spec_check(files: list[Path] = typer.Argument(..., help="Mask spec YAML files.")) -> None:
    """Validate spec files: one line per file, exit code 2 if any is malformed."""
    from ..errors import SpecError
    from ..spec import compact_text, load_spec

    bad = 0
    for path in files:
        try:
            spec = load_spec(path)
        except SpecError as err:
            err_console.print(str(err), markup=False)
            bad += 1
            continue
        console.print(f"{path}: ok: {spec.layers}x{spec.heads}, {spec.num_masked} hard-masked heads, "
                      f"compact {compact_text(spec) or spec.label()}", markup=False)  # with its window
    if bad:
        raise typer.Exit(2)


@spec_app.command("show")
def spec_show(
        file: str = typer.Argument(..., help="A mask spec YAML file, compact text (777711@3x3:paper) with --heads, "
                                             "or a preset (sch2) with --layers and --heads."),
        layers: Optional[int] = typer.Option(None, "--layers", "-L", min=1, help="Layers, for a preset."),
        heads: Optional[int] = typer.Option(None, "--heads", "-H", min=1,
                                            help="Heads per layer, which compact text and presets do not hold."),
) -> None:
    """Pretty-print a spec with its placement grid (and ALS, when the spec carries it)."""
    from ..model.mait import names_preset, resolve_spec
    from ..spec import is_compact_text, normalize_als
    from .render import placement_grid, spec_summary

    if is_compact_text(file) and heads is None:
        raise ConfigError(f"{file}: compact text holds no head count; give --heads")
    if names_preset(file) and (layers is None or heads is None):
        raise ConfigError(f"{file}: a preset has no size of its own; give --layers and --heads")
    spec = resolve_spec(file, layers, heads, source="spec")
    console.print(spec_summary(spec))
    als, uniform = spec.meta.get("als"), spec.meta.get("als_uniform")
    if als_fits(als, spec) and isinstance(uniform, (int, float)):
        als = [[normalize_als(a, uniform) for a in row] for row in als]  # as every table shows ALS
    console.print(placement_grid(spec, als if als_fits(als, spec) else None))


@spec_app.command("preset")
def spec_preset(
        name: str = typer.Argument(..., help="none, sch1, sch2, sch3, all or random, optionally @ROWSxCOLS."),
        layers: int = typer.Option(..., "--layers", "-L", min=1),
        heads: int = typer.Option(..., "--heads", "-H", min=1),
        window: str = typer.Option("3x3", help="Window rows x cols, odd sizes."),
        semantics: str = typer.Option("paper", help="paper or local."),
        seed: int = typer.Option(0, help="Seed of the random preset's masks."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Write one of the paper's reference placements as a spec (sch1@5x5: with its own window)."""
    from ..spec import named_preset

    spec = named_preset(name, layers, heads, seed=seed, window=parse_window(window), semantics=semantics)
    if output is None:
        sys.stdout.write(spec.to_yaml())
    else:
        check_output_path(output)
        spec.save(output)
        console.print(f"wrote {output}", markup=False)
