"""Faults a long search meets: dead workers, OOM, NaN, crashes, several machines."""

import dataclasses
import fcntl
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch

from maitsearch.search import executors
from maitsearch.config import resolve_config_path
from maitsearch.search.optuna_study import OptunaStrategy
from maitsearch.training import TrialResult
from maitsearch.errors import SearchError
from maitsearch.search.launch import run_search
from maitsearch.runs.reading import run_from_storage
from maitsearch.search.optuna_study import study_name
from maitsearch.spec import load_spec

from .postgres import PASSWORD
from .test_claims import STALL

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def quick_command(tmp_path, *extra):
    return [sys.executable, "-m", "maitsearch", "run", "--config", "quick", "--results", str(tmp_path), *extra]


@pytest.mark.slow
def test_oom_nan_and_crashes_fail_one_trial_each_and_the_search_goes_on(quick_config, digits, tmp_path, monkeypatch):
    real_fit = executors.fit
    faults = {"3310": "oom", "3100": "nan", "7310": "crash"}

    def faulty_fit(spec, proxy, data, **kwargs):
        fault = faults.get(spec.compact())
        if fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if fault == "crash":
            raise KeyError("a bug in a strategy's placement")
        result = real_fit(spec, proxy, data, **kwargs)
        if fault == "nan":
            return TrialResult(status="nan_loss", reason="non-finite loss nan at step 7", steps=7, epochs=0)
        return result

    monkeypatch.setattr(executors, "fit", faulty_fit)
    config = quick_config.replace(strategy="optuna", trials=6, max_failures=3,
                                  proxy=quick_config.proxy.replace(epochs=1))
    strategy_config = config.replace(optuna=dataclasses.replace(config.optuna, pruner="none", warm_start=["sch1"]))

    strategy = OptunaStrategy(strategy_config)
    real_attach = strategy.attach

    def attach(store):
        real_attach(store)
        for counts in ([2, 2, 1, 0], [2, 1, 0, 0], [3, 2, 1, 0], [0, 0, 0, 0], [3, 3, 3, 3]):
            strategy.study.enqueue_trial({f"l{i}": c for i, c in enumerate(counts)})

    strategy.attach = attach
    summary = run_search(strategy_config, results_root=tmp_path, name="faults", data=digits, strategy=strategy)
    states = {r.spec.compact(): (r.state, r.reason) for r in summary.records}
    assert states["3310"][0] == "oom" and "out of memory" in states["3310"][1]
    assert states["3100"] == ("nan_loss", "non-finite loss nan at step 7")
    assert states["7310"][0] == "failed" and states["7310"][1].startswith("KeyError: ")
    assert states["0000"][0] == "complete" and states["7777"][0] == "complete", "the search went on"
    study = optuna.load_study(study_name=study_name("faults"), storage=f"sqlite:///{tmp_path / 'faults' / 'study.db'}")
    reasons = {t.number: t.user_attrs.get("maitsearch:reason", "") for t in study.trials}
    assert sum(r.startswith(("oom", "nan_loss", "failed")) for r in reasons.values()) == 3


def test_too_many_failures_stop_the_search(quick_config, digits, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "fit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(SearchError, match=r"2 trials failed \(more than --max-failures 1\).*RuntimeError: boom"):
        run_search(quick_config.replace(max_failures=1, seeds=1), results_root=tmp_path, name="boom", data=digits)


def stalled_worker(args, mark, env=None):
    """A worker that stops at the start of its first (or STALL_AT-th) training until it is killed
    (tests/stall.py): the test acts at a known point, however busy the machine is."""
    env = {"STALL_AT": "1", **(env or {}), "STALL_MARK": str(mark)}
    worker = subprocess.Popen([sys.executable, str(STALL), *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, **env})
    deadline = time.time() + 300
    while not mark.exists() and worker.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert mark.exists(), "the worker reached its training"
    return worker


@pytest.mark.slow
def test_second_worker_on_sqlite_is_refused(tmp_path):
    args = ["run", "--config", "quick", "--results", str(tmp_path), "--strategy", "optuna", "--trials", "3",
            "--name", "solo"]
    first = stalled_worker(args, tmp_path / "first-is-training")
    with open(tmp_path / "solo" / "study.db.lock") as lock, pytest.raises(BlockingIOError):
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first worker holds the study's lock
    second = subprocess.run(quick_command(tmp_path, "--strategy", "optuna", "--trials", "3", "--name", "solo"),
                            capture_output=True, text=True, timeout=300)
    first.kill()
    first.wait()
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert "another worker is already running on this SQLite study" in second.stderr
    assert "journal:PATH" in second.stderr and "postgresql://" in second.stderr


@pytest.mark.slow
def test_killed_worker_trial_fails_and_its_placement_is_retried(tmp_path):
    """SIGKILL a worker mid-trial; a fresh worker fails the stale trial after the grace period
    and retries the same placement to COMPLETE."""
    config = tmp_path / "fast-heartbeat.yaml"
    config.write_text(resolve_config_path("quick").read_text().replace(
        "optuna:\n  pruner: median", "optuna:\n  pruner: none\n  heartbeat_interval: 1\n  grace_period: 3"))
    args = ["run", "--config", str(config), "--epochs", "1", "--strategy", "optuna", "--trials", "3", "--name", "dies",
            "--results", str(tmp_path)]
    victim = stalled_worker(args, tmp_path / "victim-in-trial-1", {"STALL_AT": "2"})
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # The victim is dead: its last heartbeat came before the kill, so past the grace period (3 s)
    # its trial is stale by any clock, however long the machine took to get here.
    time.sleep(4)
    fresh = subprocess.run([sys.executable, "-m", "maitsearch", *args], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "MAITSEARCH_CLAIM_GRACE": "2"})  # the victim's trial-cache claim too
    assert fresh.returncode == 0, fresh.stderr
    study = optuna.load_study(study_name=study_name("dies"), storage=f"sqlite:///{tmp_path / 'dies' / 'study.db'}")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1, [t.state for t in study.trials]
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == failed[0].params
    assert sum(t.state in FINISHED for t in study.trials) == 3
    assert not list((tmp_path / "dies").rglob("*.tmp"))
    csv_numbers = [int(line.split(",")[0]) for line in (tmp_path / "dies" / "trials.csv").read_text().splitlines()[1:]]
    assert sorted(csv_numbers) == sorted(t.number for t in study.trials if t.state in FINISHED)


@pytest.mark.slow
def test_three_postgres_workers_share_one_study(postgres, tmp_path):
    url = postgres.url()
    env = {**os.environ, "MAITSEARCH_STORAGE": url}
    command = quick_command(tmp_path, "--epochs", "1", "--strategy", "optuna", "--trials", "12", "--name", "pg")
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(3)]
    outputs = [worker.communicate(timeout=900) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert PASSWORD not in out + err
    study = optuna.load_study(study_name=study_name("pg"), storage=url)
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == 12
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.FAIL:
            assert "surplus" in trial.user_attrs.get("maitsearch:reason", "")
    for trial in finished:
        assert load_spec(tmp_path / "pg" / "trials" / f"{trial.number}.yaml").meta["trial"] == trial.number
    for path in [tmp_path / "pg" / "search.yaml", tmp_path / "pg" / "report.md"]:
        assert PASSWORD not in path.read_text()
    # without the shared folder, the storage alone holds every trial
    from_storage = run_from_storage(url, "pg")
    assert sorted(r.number for r in from_storage.records) == sorted(t.number for t in finished)


@pytest.mark.slow
def test_journal_storage_fails_and_retries_a_silent_trial(tmp_path):
    """Optuna's journal storage has no heartbeat of its own; ours keeps one in system attributes."""
    from maitsearch.runs.study_storage import open_storage

    storage = open_storage(f"journal:{tmp_path / 'j.log'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s")
    alive, silent = study.ask(), study.ask()
    for trial in (alive, silent):
        trial.suggest_int("l0", 0, 3)
        storage.record_heartbeat(trial._trial_id)
    time.sleep(1.5)
    storage.record_heartbeat(alive._trial_id)  # only one worker is still beating
    optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    assert states[silent.number] == optuna.trial.TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == silent.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.WAITING
    assert retry[0].params == silent.params
