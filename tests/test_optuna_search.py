"""The Optuna strategy: its search spaces, pruning and warm start, and the study many workers
share (a journal file, helpers started by ``--jobs``, a dead worker's trial retried)."""

import dataclasses
import subprocess
import sys
import threading
import time

import optuna
import pandas as pd
import pytest

from maitsearch.config import OptunaSettings, SearchConfig
from maitsearch.events import StudyWaiting, TrialEnded, TrialReused, TrialSeen
from maitsearch.runs import RunStore
from maitsearch.search.launch import run_search
from maitsearch.search.optuna_study import OptunaStrategy, staircase, study_name
from maitsearch.spec import load_spec, preset

from .test_search import fake_record


def optuna_strategy(config, tmp_path, name="study"):
    strategy = OptunaStrategy(config)
    store = RunStore(tmp_path, name)
    store.path.mkdir(parents=True, exist_ok=True)  # a run's folder exists before its strategy attaches
    strategy.attach(store)
    return strategy


def test_counts_space_maps_to_canonical_placements(tmp_path):
    config = SearchConfig(strategy="optuna", layers=3, heads=3)
    strategy = optuna_strategy(config, tmp_path)
    spec = strategy.suggest(optuna.trial.FixedTrial({"l0": 2, "l1": 0, "l2": 3}))
    assert spec.masks == ((0, 1), (), (0, 1, 2)) and spec == spec.canonical()
    for name in ("sch1", "sch2", "none", "all"):
        preset_spec = preset(name, 3, 3)
        assert strategy.suggest(optuna.trial.FixedTrial(strategy.params_for(preset_spec))).counts() == preset_spec.counts()


def test_a_restarted_worker_restores_only_the_trial_files_the_study_agrees_with(tmp_path):
    """The race the chaos test met: a worker killed inside ``tell`` after storing its record and
    before the state; its silent trial is then failed. A restart must not write that record as
    a trial, while it does write those whose worker died just after telling."""
    from maitsearch.runs.study_storage import RECORD_ATTR

    config = SearchConfig(strategy="optuna", layers=2, heads=3, trials=8, optuna=OptunaSettings(
        warm_start=[], pruner="none", storage=f"journal:{tmp_path / 'race.journal'}"))
    first = optuna_strategy(config, tmp_path, "race")
    told = {}
    for state in ("complete", "pruned", "failed", "killed inside tell", "torn record"):
        proposal = first.ask()[0]
        record = fake_record(proposal.handle.number, "optuna", proposal.spec, None,
                             state=state if state in ("complete", "pruned", "failed") else "complete")
        if state == "killed inside tell":
            proposal.handle.set_user_attr(RECORD_ATTR, record.to_spec("race", "optuna", "digits").to_yaml())
            first.study.tell(proposal.handle, state=optuna.trial.TrialState.FAIL)  # as the stale check does
        elif state == "torn record":
            proposal.handle.set_user_attr(RECORD_ATTR, "layers: [2, 3")
            first.study.tell(proposal.handle, [0.5])
        else:
            first.tell(proposal, record)
        told[proposal.handle.number] = state
    assert not list((tmp_path / "race" / "trials").glob("*.yaml"))  # tell alone writes no file

    optuna_strategy(config, tmp_path, "race")  # a restarted worker attaches to the same study
    restored = {load_spec(path).meta["trial"]: load_spec(path).meta["state"]
                for path in (tmp_path / "race" / "trials").glob("*.yaml")}
    assert restored == {n: state for n, state in told.items() if state in ("complete", "pruned", "failed")}


def journal_worker(tmp_path, name, trials):
    """An Optuna worker on a journal study with 1 s beats and a 1 s grace period."""
    return optuna_strategy(SearchConfig(strategy="optuna", layers=2, heads=3, trials=trials, optuna=OptunaSettings(
        warm_start=[], pruner="none", heartbeat_interval=1, grace_period=1,
        storage=f"journal:{tmp_path / (name + '.journal')}")), tmp_path, name)


def test_a_worker_shows_its_user_no_optuna_warnings(tmp_path, recwarn):
    """Optuna's experimental-API and heartbeat warnings are about calls maitsearch makes on
    purpose; a user running a search should not read them."""
    worker = journal_worker(tmp_path, "quiet", trials=1)
    proposal = worker.ask()[0]
    worker.tell(proposal, fake_record(proposal.handle.number, "optuna", proposal.spec, None, state="complete"))
    assert [f"{w.category.__name__}: {w.message}" for w in recwarn] == []


def test_a_worker_waits_for_a_dead_workers_last_trial_and_retries_it(tmp_path):
    """The race the chaos test met next: the study's last slot is held by a trial whose worker
    was killed. A worker that left at once would end the study a trial short; this one waits
    out the grace period, trains the retry, and ends with exactly the asked number."""
    from maitsearch.runs.optuna_private import record_heartbeat

    worker = journal_worker(tmp_path, "slots", trials=2)
    first = worker.ask()[0]
    worker.tell(first, fake_record(first.handle.number, "optuna", first.spec, None))
    dead = worker.study.ask()  # another worker's trial: it beat once, then was killed
    dead.suggest_int("l0", 0, 3)
    record_heartbeat(worker.study, dead)

    retry = worker.ask()
    assert len(retry) == 1 and retry[0].handle.number != dead.number
    assert worker.study.trials[dead.number].state == optuna.trial.TrialState.FAIL
    assert worker.study.trials[retry[0].handle.number].system_attrs.get("failed_trial") == dead.number
    worker.tell(retry[0], fake_record(retry[0].handle.number, "optuna", retry[0].spec, None))
    assert worker.ask() == []
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in worker.study.trials) == 2


def test_a_worker_stops_waiting_for_a_live_trial_that_outlasts_the_grace_period(tmp_path):
    from maitsearch.runs.optuna_private import record_heartbeat

    worker = journal_worker(tmp_path, "live", trials=1)
    live = worker.study.ask()  # another worker's trial, still beating
    live.suggest_int("l0", 0, 3)
    record_heartbeat(worker.study, live)
    stop = threading.Event()

    def beat():
        while not stop.wait(0.2):
            record_heartbeat(worker.study, live)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    told, polls = [], []
    worker.emit = told.append
    worker.while_waiting = lambda: polls.append(time.monotonic())
    try:
        started = time.monotonic()
        assert worker.ask() == []
        waited = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert worker.study.trials[live.number].state == optuna.trial.TrialState.RUNNING
    assert waited >= 3  # the grace period and two beats, then the live trial finishes on its own
    assert told == [StudyWaiting(running=1, seconds=3)]  # said once, not at every poll
    assert polls and polls[0] - started < 2  # the display heard of others' trials while it waited


def test_full_and_blocks_spaces(tmp_path):
    full = optuna_strategy(SearchConfig(strategy="optuna", layers=2, heads=2, optuna=OptunaSettings(space="full")), tmp_path, "f")
    spec = full.suggest(optuna.trial.FixedTrial({"l0h0": 0, "l0h1": 1, "l1h0": 1, "l1h1": 1}))
    assert spec.masks == ((1,), (0, 1))
    assert staircase(6, 3, 1, 3, 5) == [3, 2, 2, 1, 1, 0]
    blocks = optuna_strategy(SearchConfig(strategy="optuna", layers=24, heads=3,
                                                optuna=OptunaSettings(space="blocks")), tmp_path, "b")
    assert blocks.params_for(preset("sch2", 24, 3)) == {"b1": 0, "b2": 8, "b3": 20}


@pytest.mark.slow
def test_optuna_runs_presets_first_and_reuses_duplicates(quick_config, digits, tmp_path):
    config = quick_config.replace(strategy="optuna", trials=4,
                                  optuna=dataclasses.replace(quick_config.optuna, pruner="none",
                                                             warm_start=["sch1", "sch2", "none"]))
    strategy = OptunaStrategy(config)
    real_attach = strategy.attach

    def attach_and_repeat(store):  # a 4th trial that asks for sch1 again
        real_attach(store)
        strategy.study.enqueue_trial(strategy.params_for(preset("sch1", 4, 3)))

    strategy.attach = attach_and_repeat
    summary = run_search(config, results_root=tmp_path, name="dup", data=digits, strategy=strategy)
    placements = [r.spec.counts() for r in summary.records]
    assert placements[:3] == [preset(n, 4, 3).counts() for n in ("sch1", "sch2", "none")]
    assert [r.label for r in summary.records[:4]] == ["optuna sch1", "optuna sch2", "optuna none", "optuna"]
    assert load_spec(tmp_path / "dup" / "trials" / "1.yaml").meta["preset"] == "sch2"
    assert summary.records[3].duplicate_of == 0 and summary.records[3].val_top1 == summary.records[0].val_top1
    assert summary.trained == 3 and summary.reused == 1
    study = optuna.load_study(study_name="maitsearch-dup", storage=f"sqlite:///{tmp_path / 'dup' / 'study.db'}")
    assert study.trials[3].value == study.trials[0].value


@pytest.mark.slow
def test_pruner_prunes_a_trial_made_bad(quick_config, digits, tmp_path):
    config = quick_config.replace(strategy="optuna", trials=5, proxy=quick_config.proxy.replace(epochs=3),
                                  optuna=dataclasses.replace(quick_config.optuna, pruner="median", warm_start=[]))
    strategy = OptunaStrategy(config)
    real_on_epoch = strategy.on_epoch

    def sabotage(proposal, seed_index, epoch, metrics):  # trial 4 reports chance accuracy
        if proposal.handle.number == 4:
            metrics = {**metrics, "val_top1": 0.0}
        real_on_epoch(proposal, seed_index, epoch, metrics)

    strategy.on_epoch = sabotage
    summary = run_search(config, results_root=tmp_path, name="prune", data=digits, strategy=strategy)
    assert summary.records[4].state == "pruned" and summary.records[4].epochs < 3
    assert all(r.state == "complete" for r in summary.records[:3])


@pytest.mark.slow
def test_two_workers_share_one_journal_study(tmp_path):
    journal = tmp_path / "study.log"
    command = [sys.executable, "-m", "maitsearch", "run", "--config", "quick", "--epochs", "1", "--strategy",
               "optuna", "--trials", "6", "--storage", f"journal:{journal}", "--name", "shared", "--results", str(tmp_path)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    from maitsearch.runs.study_storage import open_storage

    study = optuna.load_study(study_name=study_name("shared"),
                              storage=open_storage(f"journal:{journal}", heartbeat_interval=20, grace_period=60))
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 6
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    surplus = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all("surplus" in t.user_attrs.get("maitsearch:reason", "") for t in surplus)
    yamls = sorted((tmp_path / "shared" / "trials").glob("*.yaml"))
    assert sorted(int(p.stem) for p in yamls) == sorted(t.number for t in finished)
    table = pd.read_csv(tmp_path / "shared" / "trials.csv")
    assert sorted(table["number"]) == sorted(t.number for t in finished), "whoever wrote last wrote every trial"
    best = load_spec(tmp_path / "shared" / "best.yaml")
    complete = [t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    assert best.meta["top1"] == pytest.approx(max(complete), abs=1e-5), "chosen from both workers' trials"


@pytest.mark.slow
def test_optuna_jobs_start_helper_workers_on_one_study(quick_config, digits, tmp_path, monkeypatch):
    """``--jobs 2`` with Optuna: this process and one spawned helper share the journal study,
    kept in the run's own folder (which does not exist until the run makes it); the report holds
    both workers' trials, and this process's torch threads are restored. The run reports two
    training processes, one a helper, and the "cores busy with other work" it reports is sampled
    before its own helper starts: the helper is not other work."""
    import multiprocessing

    import torch

    from maitsearch.events import RunStarted
    from maitsearch.search import launch
    from maitsearch.search.launch import run_search

    # a stand-in for the /proc/stat sample: the child processes started since this test began
    children_before = len(multiprocessing.active_children())
    monkeypatch.setattr(launch, "busy_cores", lambda: float(len(multiprocessing.active_children()) - children_before))
    events = []
    threads = torch.get_num_threads()
    monkeypatch.delenv("MAITSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    # no storage named: the run's own study begins as a journal, which SQLite's one worker could not share
    config = quick_config.replace(strategy="optuna", trials=4, jobs=2, proxy=quick_config.proxy.replace(epochs=1),
                                  optuna=dataclasses.replace(quick_config.optuna, pruner="none"))
    summary = run_search(config, results_root=tmp_path, name="helpers", data=digits, on_event=events.append)
    started = [event for event in events if isinstance(event, RunStarted)]
    assert [(event.load, event.workers, event.helpers) for event in started] == [(0.0, 2, 1)]
    assert torch.get_num_threads() == threads
    assert sorted(r.number for r in summary.records) == [0, 1, 2, 3]
    assert sorted(int(p.stem) for p in (tmp_path / "helpers" / "trials").glob("*.yaml")) == [0, 1, 2, 3]
    # the helper's trials reach the display too, each once: this process's as ended, the helper's as seen
    shown = [event.record.number for event in events if isinstance(event, (TrialEnded, TrialReused, TrialSeen))]
    assert sorted(shown) == [0, 1, 2, 3]
    assert (tmp_path / "helpers" / "study.journal").stat().st_size > 0
    assert not (tmp_path / "helpers" / "study.db").exists()


def test_a_runs_own_study_is_sqlite_for_one_worker_and_a_journal_for_several(tmp_path, monkeypatch):
    from maitsearch.runs.study_storage import one_worker_only, share_own_study, storage_url
    from maitsearch.search.launch import resolve_jobs

    monkeypatch.delenv("MAITSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    fresh, began_in_sqlite, named = tmp_path / "fresh", tmp_path / "sqlite", tmp_path / "named"
    for folder in (fresh, began_in_sqlite, named):
        folder.mkdir()
    assert storage_url(None, fresh) == f"sqlite:///{fresh / 'study.db'}" and not one_worker_only(None, fresh)
    share_own_study(None, fresh)
    assert storage_url(None, fresh) == f"journal:{fresh / 'study.journal'}"  # every worker, and a resume, finds it
    (began_in_sqlite / "study.db").touch()
    share_own_study(None, began_in_sqlite)
    assert storage_url(None, began_in_sqlite).startswith("sqlite:") and one_worker_only(None, began_in_sqlite)
    assert resolve_jobs(SearchConfig(strategy="optuna", jobs=0), began_in_sqlite) == 1
    share_own_study("postgresql://u@h/db", named)
    assert not any(named.iterdir())  # a storage named by the user is used as named
    assert one_worker_only("sqlite:///elsewhere.db", None)
