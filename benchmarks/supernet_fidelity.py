"""What each supernet heuristic buys in ranking fidelity and in seconds: Kendall's tau (with its
95% bootstrap interval) between supernet scores and stand-alone means, per setting.

    python benchmarks/supernet_fidelity.py [--config default] [--settings counts,heads,fair,longer,two,views,finetune]
                                           [--results DIR] [--standalone results] [--cache DIR] [--out PATH]

Each setting is a `maitsearch run --strategy supernet` through the real CLI that searches nothing
(`supernet.evaluations 0`, `top 0`) and scores the fidelity placements: twelve spread over the
space, and every placement the runs under `--standalone` trained on this proxy (their trial files
are copied into the scratch results folder). `counts` is the default (counts sampling, twice the
proxy's epochs, one supernet, one view, no fine-tune); the others change one thing each: `heads`
and `fair` sampling; `longer`, four times the proxy's epochs; `two`, two supernets averaged;
`views`, each held-out image scored at 3 spots; `finetune`, 20 steps of fine-tune before each
score. Stand-alone means come from those runs and the trial cache; the first setting trains the
missing ones (`supernet.fidelity: train`) with the run's seeds, into the cache (default: the one
beside `--standalone`, so later runs find them). Writes benchmarks/out/supernet_fidelity-CONFIG.json:
per setting tau, its interval, the placements it rests on, the supernets' training seconds, the
seconds per score and the run's wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from maitsearch.config import config_to_yaml, load_config

try:
    from .common import write_json
except ImportError:
    from common import write_json


def heuristics(proxy_epochs: int) -> dict[str, dict]:
    """Each setting's change to the config's supernet section (the first is the baseline)."""
    return {"counts": {}, "heads": {"sampling": "heads"}, "fair": {"sampling": "fair"},
            "longer": {"epochs": 4 * proxy_epochs}, "two": {"supernets": 2}, "views": {"views": 3},
            "finetune": {"finetune_steps": 20}}


def copy_runs(source: Path, root: Path) -> int:
    """The search.yaml and trial files of every run under ``source``, copied into ``root``: their
    trials are stand-alone means (a copy, since run folders never resolve outside their root)."""
    root.mkdir(parents=True, exist_ok=True)
    copied = 0
    for folder in sorted(source.iterdir()) if source.is_dir() else []:
        if (folder / "search.yaml").is_file() and not (root / folder.name).exists():
            (root / folder.name / "trials").mkdir(parents=True)
            shutil.copy2(folder / "search.yaml", root / folder.name / "search.yaml")
            for trial in (folder / "trials").glob("*.yaml"):
                shutil.copy2(trial, root / folder.name / "trials" / trial.name)
            copied += 1
    return copied


def measure(name: str, change: dict, base, root: Path, cache: Path, scratch: Path) -> dict:
    config = base.replace(strategy="supernet", baselines=[], supernet=dataclasses.replace(
        base.supernet, evaluations=0, top=0, fidelity="train", **change))
    path = scratch / f"{name}.yaml"
    path.write_text(config_to_yaml(config))
    command = [sys.executable, "-m", "maitsearch", "run", "--config", str(path), "--name", f"fidelity-{name}",
               "--results", str(root), "--cache", str(cache)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = yaml.safe_load((root / f"fidelity-{name}" / "supernet.yaml").read_text())
    fidelity = summary["fidelity"]
    low, high = fidelity["interval"] or (None, None)
    return {"setting": name, "change": ", ".join(f"{k} {v}" for k, v in change.items()) or "(default)",
            "tau": fidelity["tau"], "tau_low": low, "tau_high": high, "placements": fidelity["placements"],
            "supernet_s": round(sum(t["seconds"] for t in summary["supernets"]), 1),
            "score_s": summary["evaluations"]["seconds_each"],
            "fidelity_trained_s": summary["fidelity_training"]["seconds"], "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--settings", default=None, help="Comma-separated subset of the settings, in order.")
    parser.add_argument("--results", default=None, help="Results folder for the runs (default: a scratch one).")
    parser.add_argument("--standalone", default="results", help="Run folders whose trials give stand-alone means.")
    parser.add_argument("--cache", default=None, help="Trial cache (default: .maitsearch-cache beside --standalone).")
    parser.add_argument("--out", default=None,
                        help="JSON path (default: benchmarks/out/supernet_fidelity-CONFIG.json).")
    args = parser.parse_args()
    base = load_config(args.config)
    known = heuristics(base.proxy.epochs)
    chosen = args.settings.split(",") if args.settings else list(known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        sys.exit(f"--settings: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    scratch = Path(tempfile.mkdtemp(prefix="maitsearch-fidelity-"))
    root = Path(args.results) if args.results else scratch / "results"
    cache = Path(args.cache) if args.cache else Path(args.standalone).resolve().parent / ".maitsearch-cache"
    copied = copy_runs(Path(args.standalone), root)
    rows = []
    for name in chosen:
        rows.append(measure(name, known[name], base, root, cache, scratch))
        row = rows[-1]
        interval = "-" if row["tau"] is None else f"[{row['tau_low']:+.2f}, {row['tau_high']:+.2f}]"
        tau = "-" if row["tau"] is None else f"{row['tau']:+.2f}"
        print(f"{name:<9} tau {tau:>6} {interval:>16} over {row['placements']:>2} placements; supernet "
              f"{row['supernet_s']:6.0f} s, {row['score_s'] or 0:.2f} s a score, wall {row['wall_s']:6.0f} s")
    payload = {"config": args.config, "runs_copied": copied, "results": str(root), "rows": rows}
    print(f"wrote {write_json(f'supernet_fidelity-{args.config}', payload, path=args.out)}")

if __name__ == "__main__":
    main()
