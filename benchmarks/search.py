"""Wall time of `maitsearch run` with the quick and default configs, and trials per hour.

    python benchmarks/search.py [--configs quick,default] [--results /tmp/maitsearch-bench]

Each config runs once, from scratch, in a fresh results folder, through the real CLI.
Writes benchmarks/out/search.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maitsearch.runs import load_run

try:
    from .common import write_json
except ImportError:
    from common import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="quick,default")
    parser.add_argument("--results", default=None, help="Folder for the runs (default: a temporary one).")
    parser.add_argument("--extra", default="", help="Extra flags for maitsearch run, e.g. '--jobs 2'.")
    args = parser.parse_args()
    root = Path(args.results or tempfile.mkdtemp(prefix="maitsearch-bench-"))

    rows = []
    for config in args.configs.split(","):
        folder = root / config
        shutil.rmtree(folder, ignore_errors=True)
        command = [sys.executable, "-m", "maitsearch", "run", "--config", config, "--name", config,
                   "--results", str(root), *args.extra.split()]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        run = load_run(folder)
        trained = sum(1 for r in run.records if r.duplicate_of is None)
        seeds = int(run.config.get("seeds", 1))
        rows.append({"config": config, "wall_s": seconds, "trials": len(run.records), "trained": trained,
                     "seed_trainings": trained * seeds, "trials_per_hour": trained / seconds * 3600,
                     "seed_trainings_per_hour": trained * seeds / seconds * 3600})
    print(f"{'config':10} {'wall':>9} {'trials':>7} {'trained':>8} {'trials/h':>9} {'trainings/h':>12}")
    for row in rows:
        print(f"{row['config']:10} {row['wall_s'] / 60:7.1f} m {row['trials']:7d} {row['trained']:8d} "
              f"{row['trials_per_hour']:9.1f} {row['seed_trainings_per_hour']:12.1f}")
    print(f"wrote {write_json('search', {'rows': rows, 'extra': args.extra})}")


if __name__ == "__main__":
    main()
