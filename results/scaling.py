"""The scaling view of locality: at the default proxy's model and recipe, how the best placement
and the gap between Sch.2 and all move as the training set grows.

    python results/scaling.py        (results/summarize.py draws it too, and prints the table)

The sizes are the transfer studies whose target is the default proxy with more positions of each
training digit (transfer-data-x3: 3, transfer-data: 10); the smallest size is their proxy side,
the default itself. Validation and test images are the same at every size, so accuracies compare.
Every point is read from a study's transfer.yaml (no number is typed here). Writes
results/scaling.png; ``section`` is the results page's table.
"""

from __future__ import annotations

from pathlib import Path

from maitsearch.runs.transfer_report import load_transfer
from maitsearch.stats import mean_std

ROOT = Path(__file__).resolve().parent
STUDIES = ("transfer-data-x3", "transfer-data")  # targets that differ from the proxy in data size only
FIGURE = ROOT / "scaling.png"


def sizes() -> list[dict]:
    """One entry per training-set size, smallest first: the images, where it was measured, and
    each placement's per-seed validation top-1 and masked-head count."""
    found = {}
    for name in STUDIES:
        study = load_transfer(ROOT / name)
        if study is None:
            continue
        for side in ("proxy", "target"):
            copies = (study.get(side) or {}).get("train_copies", 1)
            if copies in found:  # the proxy side recurs in every study: the first one measured it
                continue
            found[copies] = {"copies": copies, "images": copies * base_train_images(study[side]["data"]),
                             "where": f"{name}/{side}",
                             "values": {r["placement"]: r[side]["values"] for r in study["placements"]},
                             "masked": {r["placement"]: r.get("masked") for r in study["placements"]}}
    return [found[copies] for copies in sorted(found)]


def base_train_images(data: str) -> int:
    from maitsearch.data import load_data

    return len(load_data(data).splits["train"][1])


def paired_gap(values: dict[str, list[float]], a: str, b: str) -> tuple[float, float] | None:
    """Mean and std over seeds of a's minus b's validation top-1, in points (same seeds, paired)."""
    if a not in values or b not in values:
        return None
    return mean_std([(x - y) * 100 for x, y in zip(values[a], values[b])])


def scaling_rows() -> list[dict]:
    rows = []
    for size in sizes():
        means = {name: mean_std(v)[0] for name, v in size["values"].items()}
        best = max(means, key=means.get)
        rows.append({"images": size["images"], "where": size["where"], "best": best,
                     "best_masked": size["masked"][best], "best_top1": means[best] * 100,
                     "sch2_minus_all": paired_gap(size["values"], "sch2", "all"),
                     "gaps_to_none": {name: paired_gap(size["values"], name, "none")
                                      for name in size["values"] if name != "none"}})
    return rows


def draw(rows: list[dict], path: Path | None = None) -> Path | None:
    """Left: each placement's paired gap to none against the training images. Right: Sch.2 minus
    all, with the best placement's masked heads written at each size. None with under two sizes."""
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [row["images"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in rows[0]["gaps_to_none"]:
        points = [(row["images"], row["gaps_to_none"].get(name)) for row in rows if row["gaps_to_none"].get(name)]
        left.errorbar([p[0] for p in points], [p[1][0] for p in points], yerr=[p[1][1] for p in points],
                      marker="o", capsize=3, label=name)
    left.axhline(0, color="grey", lw=0.8)
    left.set(xscale="log", xlabel="training images", ylabel="gap to none, validation top-1 (points)",
             title="each placement's paired gap to none (± std over seeds)")
    left.legend(fontsize=7)
    measured = [row for row in rows if row["sch2_minus_all"] is not None]
    gaps = [row["sch2_minus_all"] for row in measured]
    right.errorbar([row["images"] for row in measured], [g[0] for g in gaps], yerr=[g[1] for g in gaps],
                   marker="o", capsize=3, color="tab:red")
    for row, gap in zip(measured, gaps):
        right.annotate(f"best: {row['best']}\n({row['best_masked']} of 72 heads masked)", (row["images"], gap[0]),
                       textcoords="offset points", xytext=(6, 6), fontsize=7)
    right.axhline(0, color="grey", lw=0.8)
    right.set(xscale="log", xlabel="training images", ylabel="Sch.2 minus all (points)",
              title="Sch.2 (global late layers) minus all heads local")
    for axis in (left, right):
        axis.set_xticks(images, [str(n) for n in images])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.title.set_fontsize(9)
    fig.tight_layout()
    path = path or FIGURE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def section() -> list[str]:
    """The results page's scaling section: the table and the figure, or a line saying what is missing."""
    rows = scaling_rows()
    lines = ["## The scaling view: locality as the training set grows", "",
             "The default proxy's model and recipe at 1, 3 and 10 positions of each training digit "
             f"(studies {', '.join(STUDIES)}). Gaps are paired over "
             "the same seeds, in validation top-1 points, mean ± std.", ""]
    if not rows:
        return lines + ["(not measured yet: none of the studies has finished)", ""]
    lines += ["| training images | measured in | best placement | its masked heads | Sch.2 minus all |",
              "|---:|---|---|---:|---:|"]
    for row in rows:
        gap = row["sch2_minus_all"]
        shown = "-" if gap is None else f"{gap[0]:+.2f} ± {gap[1]:.2f}"
        lines.append(f"| {row['images']} | {row['where']} | {row['best']} | {row['best_masked']} | {shown} |")
    lines += [""] + ([f"![scaling]({FIGURE.name})"] if len(rows) > 1 else
                     ["(the figure needs two sizes; one is measured so far)"]) + [""]
    return lines


if __name__ == "__main__":
    drawn = draw(scaling_rows())
    print(f"wrote {drawn}" if drawn else "the figure needs two measured sizes")
