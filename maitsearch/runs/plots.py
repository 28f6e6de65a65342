"""Matplotlib figures of runs. Every function writes one PNG and returns its path.

Figures are drawn with the non-interactive Agg backend, so they work on headless machines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import matplotlib.transforms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..spec import MaskSpec  # noqa: E402


DPI = 110


def _save(fig, path: str | Path) -> Path:
    """PNG without a software-version stamp, so drawing the same data again writes the same
    bytes (committed figures stay unchanged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


# Where a point's label may go, in points from the point, in order of preference: right and
# above first, as the eye reads a scatter, then the other sides, then a step further out, where a
# thin line leads back to the point.
_NEAR_OFFSETS = [(5, 5, "left"), (5, -11, "left"), (-5, 5, "right"), (-5, -11, "right"), (0, 8, "center"),
                 (0, -15, "center")]
_FAR_OFFSETS = [(10, 16, "left"), (10, -22, "left"), (-10, 16, "right"), (-10, -22, "right")]


def _label_points(ax, x: Sequence[float], y: Sequence[float], labels: Sequence[str], fontsize: float = 7,
                  big_markers: dict[int, float] | None = None) -> None:
    """Label every point without labels running into each other or into other points: each
    label takes the first place in the offsets above that is free (inside the frame, clear of
    the labels placed before it and of every marker), else the least crowded one. Close points
    (a cluster of good placements) are the ones a reader needs to tell apart. ``big_markers``
    gives the size in points of the points drawn larger (a star, a ring)."""
    fig = ax.figure
    fig.set_dpi(DPI)  # small text does not scale linearly with dpi: measure it as it will be saved
    renderer = fig.canvas.get_renderer()
    ax.autoscale_view()
    frame = ax.get_window_extent(renderer)
    pixels = fig.dpi / 72
    sizes = [(big_markers or {}).get(index, fontsize) * pixels for index in range(len(labels))]  # a plain
    # marker is about a letter's height across
    markers = [matplotlib.transforms.Bbox.from_bounds(px - size / 2, py - size / 2, size, size)
               for (px, py), size in zip(ax.transData.transform(np.column_stack([x, y])), sizes)]
    placed: list = []
    for index in np.argsort(-np.asarray(y, dtype=float), kind="stable"):  # top first: its labels go above
        point = (x[index], y[index])
        others = placed + markers  # its own marker too: the offsets clear a plain marker, not a star
        best = None  # (crowding, offset, box)
        for offset in _NEAR_OFFSETS + _FAR_OFFSETS:
            text = _annotate(ax, labels[index], point, offset, fontsize)
            box = text.get_window_extent(renderer).padded(2 * pixels)  # a gap between words
            text.remove()
            crowding = sum(_overlap(box, other) for other in others) + _outside(box, frame)
            if best is None or crowding < best[0]:
                best = (crowding, offset, box)
            if crowding == 0:
                break
        _annotate(ax, labels[index], point, best[1], fontsize, leader=best[1] in _FAR_OFFSETS)
        placed.append(best[2])


def _annotate(ax, label: str, point, offset: tuple, fontsize: float, leader: bool = False):
    dx, dy, align = offset
    arrow = dict(arrowstyle="-", lw=0.5, color="0.45", shrinkA=0, shrinkB=2) if leader else None
    return ax.annotate(label, point, textcoords="offset points", xytext=(dx, dy), ha=align, fontsize=fontsize,
                       arrowprops=arrow)


def _overlap(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def _outside(box, frame) -> float:
    """The area of ``box`` outside ``frame``: a label cut off at the edge is as bad as a hidden one."""
    return box.width * box.height - _overlap(box, frame)


def _layer_head_grid(values: np.ndarray, cmap: str, colour_label: str, cell_text, title: str,
                     limits: tuple[float, float] = (0.0, 1.0)):
    """A layers-down, heads-across heatmap with a text in every cell."""
    layers, heads = values.shape
    # at least 3.2 in tall: the colour bar's label is as long as that, and a short grid cut it off
    width, height = 1.2 + 0.9 * heads, max(3.2, 1.0 + 0.32 * layers)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
    for layer in range(layers):
        for head in range(heads):
            text, colour = cell_text(values[layer, head], limits)
            ax.text(head, layer, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(heads), [f"head {h}" for h in range(heads)])
    ax.set_yticks(range(layers))
    ax.set_ylabel("layer")
    ax.set_title(textwrap.fill(title, width=int(11 * width)), fontsize=9)  # a run's name may outgrow 3 heads
    fig.colorbar(image, ax=ax, label=colour_label, fraction=0.08)
    return fig, ax


def als_title(trial: int, label: str, run: str) -> str:
    """One title for a trial's ALS figure, drawn at the end of a run or later by ``results --plot``."""
    return f"normalized ALS per head, trial {trial} ({label}) of {run}"


def als_heatmap(als: Sequence[Sequence[float]], spec: MaskSpec | None, path: str | Path, title: str) -> Path:
    """Normalized ALS per (layer, head), layers down, like the paper's Figure 3. The colours span
    0 (uniform) to the largest value shown (at least 1 when any head gets there), so a proxy
    whose ALS stays low still shows which heads are most local. Hard-masked heads are
    outlined; the value is written in each cell."""
    values = np.asarray(als, dtype=float)
    limits = (min(0.0, float(values.min())), max(float(values.max()), 0.05))

    def text(value, limits):
        return f"{value:+.2f}", "black" if value > limits[0] + 0.6 * (limits[1] - limits[0]) else "white"

    fig, ax = _layer_head_grid(values, "viridis", "normalized ALS (0 uniform, 1 all in the window)", text, title,
                               limits)
    if spec is not None:
        for layer, heads in enumerate(spec.masks):
            for head in heads:
                ax.add_patch(plt.Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
        ax.plot([], [], "s", markerfacecolor="none", markeredgecolor="red", label="hard-masked head")
        below_ticks = matplotlib.transforms.offset_copy(ax.transAxes, fig=fig, y=-18, units="points")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below_ticks, fontsize=7,
                  frameon=False)
    return _save(fig, path)


def placement_heatmap(spec: MaskSpec, path: str | Path, title: str) -> Path:
    """The placement: 0 = hard mask, alpha for soft masks, 1 = unmasked head."""
    def text(alpha, limits):
        return ("hard" if alpha == 0 else "" if alpha == 1 else f"{alpha:.2f}"), "black"

    fig, _ = _layer_head_grid(np.asarray(spec.alphas(), dtype=float), "RdYlGn", "alpha (0 = hard mask, 1 = unmasked)",
                              text, title)
    return _save(fig, path)


def alpha_trajectories(history: dict[int, Sequence[Sequence[float]]], path: str | Path, title: str) -> Path:
    """Soft-mask alphas over the epochs: one line per soft head, coloured by depth, so a reader
    sees whether they moved and where they went."""
    epochs = sorted(history)
    values = np.asarray([history[epoch] for epoch in epochs], dtype=float)  # (E, L, H)
    layers, heads = values.shape[1:]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    colours = plt.get_cmap("viridis")
    for layer in range(layers):
        for head in range(heads):
            line = values[:, layer, head]
            if np.all((line == 0.0) | (line == 1.0)):
                continue  # a hard or plain head has no alpha to learn
            ax.plot(np.asarray(epochs) + 1, line, color=colours(layer / max(layers - 1, 1)), lw=0.8, alpha=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("alpha (0 = hard mask, 1 = unmasked)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    mappable = matplotlib.cm.ScalarMappable(cmap=colours, norm=matplotlib.colors.Normalize(0, layers - 1))
    fig.colorbar(mappable, ax=ax, label="layer")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_over_trials(numbers: Sequence[int], means: Sequence[float], stds: Sequence[float],
                         labels: Sequence[str], baseline: float | None, path: str | Path, title: str,
                         states: Sequence[str] | None = None, chosen: int | None = None) -> Path:
    """Mean validation top-1 of each trial (error bars: std over seeds), with the running best
    of the complete trials, the unmasked baseline, pruned trials hollow (their accuracy is an
    early epoch's) and best.yaml's trial starred."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(numbers) + 2), 3.4))
    numbers = np.asarray(numbers)
    means_pct = np.asarray(means, dtype=float) * 100
    stds_pct = np.asarray(stds, dtype=float) * 100
    pruned = np.asarray([state == "pruned" for state in (states or ["complete"] * len(numbers))])
    ax.errorbar(numbers[~pruned], means_pct[~pruned], yerr=stds_pct[~pruned], fmt="o", capsize=3, label="trial")
    if pruned.any():
        ax.plot(numbers[pruned], means_pct[pruned], "o", mfc="none", color="tab:gray", label="pruned (early epoch)")
    running = np.maximum.accumulate(np.where(pruned, -np.inf, np.nan_to_num(means_pct, nan=-np.inf)))
    ax.step(numbers, running, where="post", color="tab:green", label="best so far")
    starred = {}
    if chosen is not None and chosen in set(numbers.tolist()):
        at = int(np.flatnonzero(numbers == chosen)[0])
        ax.plot([chosen], [means_pct[at]], "*", ms=14, color="tab:orange", label="best.yaml")
        starred[at] = 14
    if baseline is not None:
        ax.axhline(baseline * 100, color="tab:red", ls="--", lw=1, label="unmasked baseline")
    ax.margins(x=0.1, y=0.15)  # room inside the frame for the labels of the first, last and top points
    _label_points(ax, numbers, means_pct, labels, fontsize=6, big_markers=starred)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pareto_front(costs: Sequence[float], accuracies: Sequence[float], on_front: Sequence[bool],
                 path: str | Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    costs, accuracies, on_front = np.asarray(costs), np.asarray(accuracies) * 100, np.asarray(on_front, bool)
    ax.scatter(costs[~on_front], accuracies[~on_front], color="tab:gray", label="dominated")
    order = np.argsort(costs[on_front])
    ax.plot(costs[on_front][order], accuracies[on_front][order], "o-", color="tab:red", label="Pareto front")
    ax.set_xlabel("attention cost (fraction of logits left under local semantics)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def similarity_heatmaps(models: dict[str, np.ndarray], path: str | Path, title: str) -> Path:
    """Cross-layer attention similarity (paper appendix A.3): one row per model, one panel per
    head, layers on both axes."""
    heads = max(matrix.shape[0] for matrix in models.values())
    # Constrained layout keeps one row's axis labels off the next row's titles.
    fig, axes = plt.subplots(len(models), heads, figsize=(2.9 * heads + 1, 3.0 * len(models)), squeeze=False,
                             layout="constrained")
    image = None
    for row, (label, matrices) in enumerate(models.items()):
        for head in range(heads):
            ax = axes[row][head]
            image = ax.imshow(matrices[head], cmap="magma", vmin=0.0, vmax=1.0, origin="upper")
            layers = matrices[head].shape[0]
            ticks = list(range(0, layers, max(1, layers // 6)))
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.set_title(f"{label}, head {head}", fontsize=8)
            ax.set_xlabel("layer j", fontsize=8)
            ax.set_ylabel("layer i", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="cosine similarity of attention rows", fraction=0.03)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def accuracy_scatter(x_means: Sequence[float], x_stds: Sequence[float], y_means: Sequence[float],
                     y_stds: Sequence[float], labels: Sequence[str], path: str | Path, title: str,
                     axis_labels: tuple[str, str], *, pick: str | None = None, best: str | None = None,
                     pick_label: str = "the proxy's pick", best_label: str = "the target's best") -> Path:
    """Each placement's accuracy measured two ways (a proxy and its target; a supernet's score
    and stand-alone training), error bars the std over seeds on each side, every point labelled;
    ``pick`` starred, ``best`` ringed. Two measures that rank alike put the points on a rising
    line."""
    x, y = np.asarray(x_means, dtype=float) * 100, np.asarray(y_means, dtype=float) * 100
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.errorbar(x, y, xerr=np.asarray(x_stds, dtype=float) * 100, yerr=np.asarray(y_stds, dtype=float) * 100,
                fmt="o", capsize=3, color="tab:blue", label="placement")
    labels, big_markers = list(labels), {}
    if best in labels:
        at = labels.index(best)
        ax.plot([x[at]], [y[at]], "o", ms=14, mfc="none", mec="tab:green", mew=2, label=best_label, zorder=3)
        big_markers[at] = 14
    if pick in labels:
        at = labels.index(pick)
        ax.plot([x[at]], [y[at]], "*", ms=15, color="tab:orange", label=pick_label, zorder=3)
        big_markers[at] = 15
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(textwrap.fill(title, width=70), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    ax.margins(0.08)
    _label_points(ax, x, y, labels, big_markers=big_markers)
    return _save(fig, path)
