"""Rich renderings of library data. Only the CLI imports this module."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ..spec import MaskSpec


def placement_grid(spec: MaskSpec, als=None) -> Table:
    """Layers down, heads across: a filled square for a hard mask, alpha for a soft one, a dot
    for an unmasked head; with ``als`` (L x H), each cell also shows the head's ALS."""
    table = Table(title=f"placement {spec.compact()}", show_edge=False, pad_edge=False)
    table.add_column("layer", justify="right", style="dim")
    for head in range(spec.heads):
        table.add_column(f"h{head}", justify="center")
    for layer, alphas in enumerate(spec.alphas()):
        cells = []
        for head, alpha in enumerate(alphas):
            if alpha == 0.0:
                cell = Text("■", style="bold red")
            elif alpha < 1.0:
                cell = Text(f"{alpha:.2f}", style="yellow")
            else:
                cell = Text("·", style="dim")
            if als is not None:
                cell.append(f" {als[layer][head]:.2f}", style="cyan")
            cells.append(cell)
        table.add_row(str(layer), *cells)
    return table


def spec_summary(spec: MaskSpec) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [("layers x heads", f"{spec.layers} x {spec.heads}"),
            ("window", f"{spec.window[0]}x{spec.window[1]}"),
            ("semantics", spec.semantics),
            ("masked heads", f"{spec.num_masked} of {spec.layers * spec.heads} hard"
                             + (", soft masks present" if spec.is_soft else "")),
            ("compact", spec.compact())]
    if spec.pattern != "window":
        rows.append(("pattern", f"{spec.pattern} (seed {spec.pattern_seed})"))
    rows += [(f"meta.{key}", str(value)) for key, value in spec.meta.items() if key != "als"]
    for key, value in rows:
        table.add_row(key, value)
    return table
