"""The search strategies compared as NAS practice asks: at equal wall time, from several search
seeds, each answer judged on fresh seeds against the hand-written placements.

    python benchmarks/strategies.py [--config default] [--strategies supernet,optuna,random,als]
                                    [--search-seeds 0,10] [--budget SECONDS] [--fresh-seed 20]
                                    [--fresh-seeds 5] [--results DIR] [--cache DIR] [--out PATH]
                                    [--no-new-run-after MINUTES]

Every run goes through the real CLI (`maitsearch run`, then `maitsearch confirm`), each search
run with a trial cache of its own, so none is faster for what another trained. A search seed is
the proxy's base seed (the training seeds of the run, and the seed of its sampler). The budget
is the supernet runs' mean wall time (or `--budget`); the others are sized to it from the
seconds per trained trial-seed the supernet runs measured: Optuna (TPE, its median pruner) and
random search (Optuna's random sampler, no pruning) train one-seed trials, as many as the
budget holds on the config's workers (a journal storage in the run folder lets them share the
study); the ALS strategy, whose three steps are fixed, gets as many seeds per placement as the
budget holds. Each run's answer (answer.yaml, else best.yaml) is then retrained by
`maitsearch confirm --top 1 --first-seed F --seeds N --also sch2,all`, so every answer meets
none, Sch.1, Sch.2 and all on the same fresh seeds (trained once, in one shared cache). The table
gives each answer's fresh-seed mean and its paired difference to each of them, marked `*` beyond
twice its standard error. Writes benchmarks/out/strategies.json (strategies-CONFIG.json for
another config); each run's wall time is in it, to check the budgets were equal.

It takes hours on 2 cores, so it resumes: the run folders, their trial caches and `walls.json`
(each run's wall seconds, added up over the sessions it ran in, written every half minute) live
in --results (default benchmarks/out/strategies-CONFIG-runs/). Run the same command again after
an interruption; a finished run is not run again, an unfinished one resumes through the CLI, and
its wall time goes on from what `walls.json` holds (a seed being trained when it stopped is lost
time, and counts). `--no-new-run-after` ends a session cleanly instead: no run or confirmation
starts after that many minutes, so none is cut off and charged for a lost seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from maitsearch import load_run
from maitsearch.config import config_to_yaml, load_config
from maitsearch.stats import mean_std, resolvable_gap

try:
    from .common import OUT, write_json
except ImportError:
    from common import OUT, write_json

HAND_WRITTEN = ("none", "sch1", "sch2", "all")
ALS_PLACEMENTS = 4  # none, Sch.1 (its step 1 too), assign, calibrate: what the ALS strategy trains per seed


REPOSITORY = Path(__file__).resolve().parents[1]  # the JSON names its runs the same from any cwd
WALLS = "walls.json"  # run name -> {"wall_s": seconds over every session, "done": finished}


def maitsearch(args: list[str], log: Path, walls: Path | None = None, name: str = "") -> float:
    """Run the CLI, its output appended to ``log``; the wall seconds it took, added to what
    ``walls`` held for ``name`` (kept up to date while it runs, so an interruption loses little)."""
    held = read_walls(walls).get(name, {}).get("wall_s", 0.0) if walls else 0.0
    start = time.perf_counter()
    with open(log, "a") as out:
        process = subprocess.Popen([sys.executable, "-m", "maitsearch", *args], stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                code = process.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                if walls:
                    record_wall(walls, name, held + time.perf_counter() - start, done=False)
    wall = held + time.perf_counter() - start
    if walls:
        record_wall(walls, name, wall, done=code == 0)
    if code:
        sys.exit(f"maitsearch {' '.join(args)} failed (exit {code}); see {log}")
    return wall


def read_walls(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def record_wall(path: Path, name: str, seconds: float, *, done: bool) -> None:
    walls = read_walls(path)
    walls[name] = {"wall_s": round(seconds, 1), "done": done}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(walls, indent=1, sort_keys=True))
    os.replace(temporary, path)


def search_config(base, strategy: str, seed: int, root: Path, name: str, *, budget: float | None,
                  trial_seed_s: float | None, workers: int):
    """The config of one search run: ``strategy`` from search seed ``seed``, sized to ``budget``."""
    proxy = base.proxy.replace(seed=seed)
    if strategy == "supernet":
        return base.replace(strategy="supernet", proxy=proxy,
                            supernet=dataclasses.replace(base.supernet, fidelity="off"))
    fits = max(1, math.floor(budget * workers / trial_seed_s))  # trial-seeds the budget holds
    if strategy == "als":
        return base.replace(strategy="als", proxy=proxy, seeds=max(base.seeds, fits // ALS_PLACEMENTS))
    storage = f"journal:{root / name / 'study.journal'}" if workers > 1 else None
    optuna = dataclasses.replace(base.optuna, storage=storage, sampler="tpe" if strategy == "optuna" else "random",
                                 pruner=base.optuna.pruner if strategy == "optuna" else "none")
    return base.replace(strategy="optuna", proxy=proxy, seeds=1, trials=max(4, fits), jobs=workers, optuna=optuna)


def trial_seed_seconds(run) -> float | None:
    """Seconds per trial-seed a run trained (cached and repeated trials cost it nothing)."""
    trained = [(r.seconds, len(r.seeds) - r.cached) for r in run.records if r.duplicate_of is None]
    seeds = sum(n for _, n in trained)
    return sum(s for s, _ in trained) / seeds if seeds else None


def judged(run_name: str, root: Path) -> dict:
    """The run's answer on the fresh seeds, against each hand-written placement, paired by seed."""
    answer = load_run(root / run_name)
    record = answer.answer_record()
    fresh = load_run(root / f"{run_name}-confirm").records
    mine = next(r for r in fresh if r.spec.key() == record.spec.key() and r.state == "complete")
    row = {"answer": record.spec.compact(), "answer_fresh": mean_std(mine.val_top1)[0] * 100}
    for name in HAND_WRITTEN:
        other = next((r for r in fresh if r.spec.meta.get("preset") == name and r.state == "complete"), None)
        if other is None or other.seeds != mine.seeds:
            continue
        if other.spec.key() == mine.spec.key():  # the answer is this placement
            row[f"vs_{name}"], row[f"vs_{name}_points"], row[f"vs_{name}_beyond_noise"] = "same", 0.0, False
            continue
        gain, spread = mean_std([a - b for a, b in zip(mine.val_top1, other.val_top1)])
        beyond = len(mine.seeds) > 1 and gain != 0 and abs(gain) >= resolvable_gap(spread, len(mine.seeds), paired=True)
        row[f"vs_{name}"] = f"{gain * 100:+.2f}{'*' if beyond else ''}"
        row[f"vs_{name}_points"], row[f"vs_{name}_beyond_noise"] = gain * 100, beyond
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--strategies", default="supernet,optuna,random,als")
    parser.add_argument("--search-seeds", default="0,10")
    parser.add_argument("--budget", type=float, default=None, help="Seconds per run (default: the supernet runs').")
    parser.add_argument("--trial-seed-seconds", type=float, default=None,
                        help="Seconds a trial-seed trains (default: what the supernet runs measured).")
    parser.add_argument("--fresh-seed", type=int, default=20, help="First seed of the confirmations.")
    parser.add_argument("--fresh-seeds", type=int, default=5)
    parser.add_argument("--results", default=None,
                        help="Where the runs, their caches and walls.json live, to resume from "
                             "(default: benchmarks/out/strategies-CONFIG-runs).")
    parser.add_argument("--cache", default=None,
                        help="The confirmations' shared trial cache (default: confirm-cache in --results).")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/out/strategies[-CONFIG].json).")
    parser.add_argument("--no-new-run-after", type=float, default=None, metavar="MINUTES",
                        help="Start no run or confirmation after this many minutes; the same command resumes.")
    args = parser.parse_args()
    started = time.monotonic()

    def stop_if_late(next_step: str) -> None:
        if args.no_new_run_after is not None and time.monotonic() - started > args.no_new_run_after * 60:
            sys.exit(f"stopping before {next_step}: past --no-new-run-after {args.no_new_run_after:g} min; "
                     "run the same command again to go on")

    base = load_config(args.config)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = [int(s) for s in args.search_seeds.split(",")]
    if strategies[0] != "supernet" and (args.budget is None or args.trial_seed_seconds is None):
        sys.exit("--budget and --trial-seed-seconds: without supernet runs first, say how long each run may take "
                 "and how long a trial-seed trains")
    fresh = set(range(args.fresh_seed, args.fresh_seed + args.fresh_seeds))
    root = Path(args.results) if args.results else OUT / f"strategies-{args.config}-runs"
    scratch = root / "work"  # configs, logs and per-run trial caches: kept, so a rerun resumes
    scratch.mkdir(parents=True, exist_ok=True)
    walls = root / WALLS
    shared_cache = Path(args.cache) if args.cache else scratch / "confirm-cache"
    workers = base.jobs or os.cpu_count() or 1
    budget, per_seed, rows = args.budget, args.trial_seed_seconds, []
    for strategy in strategies:
        for seed in seeds:
            name = f"{strategy}-seed{seed}"
            config = search_config(base, strategy, seed, root, name, budget=budget, trial_seed_s=per_seed,
                                   workers=workers)
            if fresh & set(range(seed, seed + config.seeds)):
                sys.exit(f"--fresh-seed {args.fresh_seed}: {name} trains seeds {seed}-{seed + config.seeds - 1}; "
                         "fresh seeds must lie above every search run's")
            path = scratch / f"{name}.yaml"
            path.write_text(config_to_yaml(config))
            held = read_walls(walls).get(name, {})
            if held.get("done"):
                wall = held["wall_s"]
            else:
                stop_if_late(name)
                wall = maitsearch(["run", "--config", str(path), "--name", name, "--results", str(root),
                                   "--cache", str(scratch / f"cache-{name}")], scratch / f"{name}.log", walls, name)
            rows.append({"strategy": strategy, "search_seed": seed, "wall_s": round(wall, 1),
                         "trials": len(load_run(root / name).records), "seeds": config.seeds})
            print(f"{name:<18} {wall:7.0f} s, {rows[-1]['trials']} trials of {config.seeds} seed(s)")
        if strategy == "supernet":
            ran = [row for row in rows if row["strategy"] == "supernet"]
            budget = budget or sum(row["wall_s"] for row in ran) / len(ran)
            measured = [trial_seed_seconds(load_run(root / f"supernet-seed{row['search_seed']}")) for row in ran]
            per_seed = per_seed or sum(m for m in measured if m) / max(1, sum(1 for m in measured if m))
            print(f"budget {budget:.0f} s per run; {per_seed:.0f} s per trained trial-seed")
    for row in rows:
        name = f"{row['strategy']}-seed{row['search_seed']}"
        stop_if_late(f"confirming {name}")
        maitsearch(["confirm", name, "--top", "1", "--seeds", str(args.fresh_seeds), "--first-seed",
                    str(args.fresh_seed), "--also", "sch2,all", "--results", str(root), "--cache", str(shared_cache)],
                   scratch / f"{name}-confirm.log")
        row.update(judged(name, root))
    columns = ["strategy", "search_seed", "wall_s", "trials", "seeds", "answer", "answer_fresh"] + \
              [f"vs_{name}" for name in HAND_WRITTEN]
    print(" | ".join(columns))
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "-")) for c in columns]
        print(" | ".join(cells))
    beating = [row for row in rows if row.get("vs_sch2_beyond_noise") and row["vs_sch2_points"] > 0]
    print(f"answers beyond the noise above Sch.2 on {args.fresh_seeds} fresh seeds: {len(beating)} of {len(rows)}")
    payload = {"config": args.config, "budget_s": budget, "train_s_per_trial_seed": per_seed,
               "fresh_seeds": list(range(args.fresh_seed, args.fresh_seed + args.fresh_seeds)),
               "results": os.path.relpath(root.resolve(), REPOSITORY),
               "rows": [{c: row.get(c) for c in columns} for row in rows]}
    stem = "strategies" if args.config == "default" else f"strategies-{args.config}"
    print(f"wrote {write_json(stem, payload, path=args.out)}")


if __name__ == "__main__":
    main()
