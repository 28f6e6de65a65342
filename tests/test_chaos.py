"""A bounded chaos test: random SIGKILLs of the workers of one search, and what must survive them.

Three Optuna workers share one study on a real PostgreSQL server and one trial cache; an ALS
run on the same quick proxy shares the cache too. For ``$MAITSEARCH_CHAOS_SECONDS`` (75 in CI)
a driver SIGKILLs a random live process every few seconds and starts it again with the same
command. Then every process finishes, and: the study holds exactly the asked number of finished
trials, every file parses, no seed was trained to completion twice (only a kill or a pruned
trial interrupts a training, and only those trainings repeat; a kill between a training's end and
its cache entry loses a finished one, and only that one is trained again), and ``maitsearch results`` reads
both runs. Its figures are printed whatever pytest's capture: kills, restarts, trials, seeds
trained to completion, seeds started more than once, seconds lost. ``MAITSEARCH_CHAOS_SEED`` repeats a schedule;
``MAITSEARCH_CHAOS_TRIALS`` sizes the study for a long run (the chaos ends early once every worker has finished).
"""

import csv
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import optuna
import pytest
import yaml

from maitsearch.config import resolve_config_path
from maitsearch.runs.cache import TrialCache
from maitsearch.runs.folder import TRIALS_CSV_COLUMNS
from maitsearch.runs.record import FAILED_STATES
from maitsearch.search.optuna_study import study_name
from maitsearch.spec import load_spec

from .test_claims import STALL

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class Worker:
    """One command, started again after each kill; every start's output goes to its own file."""

    def __init__(self, name: str, command: list[str], env: dict, logs: Path):
        self.name, self.command, self.env, self.logs = name, command, env, logs
        self.starts: list[subprocess.Popen] = []
        self.start()

    def start(self) -> None:
        out = open(self.logs / f"{self.name}-{len(self.starts)}.log", "w")
        self.starts.append(subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env))
        out.close()

    @property
    def process(self) -> subprocess.Popen:
        return self.starts[-1]

    def alive(self) -> bool:
        return self.process.poll() is None


def read_trainings(log: Path):
    """{(placement key, seed): [(pid, start time, end time or None, status or None)]}."""
    runs: dict[tuple, list] = defaultdict(list)
    open_starts: dict[tuple, list] = {}
    for line in log.read_text().splitlines():
        kind, pid, key, seed, *rest = line.split()
        if kind == "start":
            entry = [int(pid), float(rest[-1]), None, None]
            runs[(key, int(seed))].append(entry)
            open_starts[(pid, key, seed)] = entry
        else:
            entry = open_starts.pop((pid, key, seed))
            entry[2], entry[3] = float(rest[-1]), rest[0]
    return runs


def check_run_folder(folder: Path) -> dict[int, str]:
    """Every file of the run parses; {trial number: state} of its trial files, as trials.csv lists them too."""
    yaml.safe_load((folder / "search.yaml").read_text())
    states = {spec.meta["trial"]: spec.meta["state"] for spec in map(load_spec, (folder / "trials").glob("*.yaml"))}
    rows = list(csv.reader(io.StringIO((folder / "trials.csv").read_text())))
    assert rows[0] == TRIALS_CSV_COLUMNS
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(states), "trials.csv holds every trial file"
    return states


@pytest.mark.slow
@pytest.mark.chaos
def test_random_kills_lose_nothing_and_train_nothing_twice(postgres, tmp_path, request):
    seconds = float(os.environ.get("MAITSEARCH_CHAOS_SECONDS", "75"))
    seed = int(os.environ.get("MAITSEARCH_CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
    chaos = random.Random(seed)
    # enough that the study outlives the chaos at CI's bound; a long run by hand sets its own
    trials = int(os.environ.get("MAITSEARCH_CHAOS_TRIALS", max(12, int(seconds / 6))))
    results, logs, training_log = tmp_path / "results", tmp_path / "logs", tmp_path / "trainings.log"
    logs.mkdir()
    config = tmp_path / "chaos.yaml"
    # short heartbeats: a killed worker's trial is failed and retried within seconds; its kills
    # fail trials on purpose, so failures do not stop the search
    config.write_text(resolve_config_path("quick").read_text().replace(
        "optuna:\n  pruner: median", "max_failures: 1000\noptuna:\n  pruner: median\n  heartbeat_interval: 1\n"
                                     "  grace_period: 5"))
    env = {**os.environ, "MAITSEARCH_CACHE": str(tmp_path / "cache"), "MAITSEARCH_CLAIM_GRACE": "5",
           "OMP_NUM_THREADS": "1", "STALL_LOG": str(training_log)}
    run = [sys.executable, str(STALL), "run", "--config", str(config), "--results", str(results)]
    url = postgres.url()
    optuna_command = [*run, "--strategy", "optuna", "--trials", str(trials), "--storage", url, "--name", "chaos"]
    workers = [Worker(f"optuna{i}", optuna_command, env, logs) for i in range(3)]
    workers.append(Worker("als", [*run, "--name", "chaos-als"], env, logs))

    kills: list[tuple[int, float]] = []  # (pid, time)
    started = time.time()
    while time.time() - started < seconds:
        time.sleep(chaos.uniform(2, 10))
        alive = [worker for worker in workers if worker.alive()]
        if not alive:
            break
        victim = chaos.choice(alive)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        kills.append((victim.process.pid, time.time()))
        victim.start()
    chaos_seconds = time.time() - started
    for worker in workers:
        code = worker.process.wait(timeout=900)
        assert code == 0, f"{worker.name}: exit {code}\n" + (logs / f"{worker.name}-{len(worker.starts) - 1}.log").read_text()

    study = optuna.load_study(study_name=study_name("chaos"), storage=url)
    finished = sorted(t.number for t in study.trials if t.state in FINISHED)
    assert len(finished) == trials, "exactly the asked number of finished trials"
    # a worker killed inside tell leaves a record its failed trial contradicts: no file may show it
    trial_files = check_run_folder(results / "chaos")
    assert sorted(n for n, state in trial_files.items() if state not in FAILED_STATES) == finished, \
        "a trial file for every finished trial, and none for a trial the study failed"
    failed = {t.number for t in study.trials if t.state == optuna.trial.TrialState.FAIL}
    assert {n for n, state in trial_files.items() if state in FAILED_STATES} <= failed
    als_numbers = sorted(check_run_folder(results / "chaos-als"))
    assert als_numbers == [0, 1, 2, 3, 4]
    entries, problems = TrialCache(tmp_path / "cache").entries()
    assert problems == []

    killed = {pid: when for pid, when in kills}
    trained = read_trainings(training_log)
    lost, unstored = 0.0, 0
    for (key, proxy_seed), runs in trained.items():
        complete = [r for r in runs if r[3] == "complete"]
        # A training that completed is trained again only when its process was killed after it
        # ended and before its result reached the cache (the claim then falls silent), and the
        # next one started after that kill: a live worker's result is never trained twice.
        for (pid, start, end, _), later in zip(complete, complete[1:]):
            assert pid in killed and end <= killed[pid] <= later[1], \
                f"{key} seed {proxy_seed} trained to completion twice, the first by a live worker: {runs}"
            unstored += 1
            lost += end - start
        for pid, start, end, status in runs:
            if end is None:  # only a kill stops a training without its end line
                assert pid in killed, f"{key} seed {proxy_seed}: pid {pid} started it, was not killed, never ended it"
                lost += killed[pid] - start
    assert {e.key["placement"] for e in entries} == {key for (key, _), runs in trained.items()
                                                     if any(r[3] == "complete" for r in runs)}

    for name, count in (("chaos", len(trial_files)), ("chaos-als", len(als_numbers))):
        shown = subprocess.run([sys.executable, "-m", "maitsearch", "results", "--results", str(results), name,
                                "-f", "csv"], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert len(list(csv.DictReader(io.StringIO(shown.stdout)))) == count

    outputs = "".join(path.read_text() for path in logs.glob("*.log"))
    figures = {
        "seconds of chaos": round(chaos_seconds), "seed": seed, "kills": len(kills),
        "restarts": sum(len(worker.starts) - 1 for worker in workers),
        "trials": f"{len(finished)} optuna (+{sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)} failed)"
                  f" + {len(als_numbers)} als",
        "seeds trained to completion": sum(any(r[3] == "complete" for r in runs) for runs in trained.values()),
        # a seed killed every time it started counts here and not above, so this may be the larger
        "seeds started more than once": sum(len(runs) > 1 for runs in trained.values()),
        "trainings interrupted by a kill": sum(r[2] is None for runs in trained.values() for r in runs),
        "trainings killed after they ended, before their result was stored": unstored,
        "seconds lost": round(lost, 1),
        "waits for another worker": outputs.count("waiting for "), "claims broken": outputs.count("claim on "),
    }
    for name, value in figures.items():
        request.node.user_properties.append((name, value))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nchaos: " + ", ".join(f"{name} {value}" for name, value in figures.items()))
