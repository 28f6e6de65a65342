"""The private Optuna API that maitsearch/runs/optuna_private.py relies on, checked by name, so an
Optuna release that changes it fails here, loudly, instead of silently leaving dead workers'
trials RUNNING. Nothing else in the package may reach into Optuna's private parts."""

import re
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from maitsearch.runs.optuna_private import heartbeat_interval, record_heartbeat
from maitsearch.runs.study_storage import open_storage

PACKAGE = Path(__file__).resolve().parent.parent / "maitsearch"


def test_the_private_names_the_adapter_uses_still_exist():
    from optuna.storages import _heartbeat

    for name in ("record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval",
                 "get_heartbeat_stale_trial_callback"):
        assert name in _heartbeat.BaseHeartbeat.__abstractmethods__, f"BaseHeartbeat.{name} changed"
    assert callable(_heartbeat.is_heartbeat_enabled), "optuna.storages._heartbeat.is_heartbeat_enabled changed"
    study = optuna.create_study()
    trial = study.ask()
    assert isinstance(study._storage, optuna.storages.BaseStorage), "Study._storage changed"
    assert isinstance(trial._trial_id, int) and study.trials[0]._trial_id == trial._trial_id, "_trial_id changed"


def test_a_journal_trial_that_stops_beating_is_failed_and_retried(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 'j.log'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    assert heartbeat_interval(study) == 1
    silent, beating = study.ask({"x": optuna.distributions.IntDistribution(0, 9)}), study.ask()
    record_heartbeat(study, silent)
    time.sleep(1.5)
    record_heartbeat(study, beating)
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert states[:2] == [TrialState.FAIL, TrialState.RUNNING], "only the silent trial is failed"
    assert states[2:] == [TrialState.WAITING], "and retried once, through the public retry callback"
    assert study.get_trials()[2].params == silent.params


def test_no_storage_without_heartbeats_claims_an_interval(tmp_path):
    plain = optuna.create_study(storage=open_storage(f"journal:{tmp_path / 'p.log'}", heartbeat_interval=None,
                                                     grace_period=None))
    assert heartbeat_interval(plain) is None and heartbeat_interval(optuna.create_study()) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_the_adapter_touches_optunas_private_api(path):
    if path.name == "optuna_private.py":
        return
    private = re.compile(r"\._storage\b|_trial_id|optuna\.storages\._")
    assert not private.findall(path.read_text()), f"{path.name}: use maitsearch/runs/optuna_private.py"
