"""The one place maitsearch reaches into Optuna's private API, for what Optuna has no public way to do.

Checked against Optuna 5.1.0 (the API below has been stable since 4.9, when the stale-trial
callback got its current name). ``tests/test_optuna_private.py`` fails loudly, naming the
attribute, when an Optuna release changes any of it.

Why each private use:
- **Heartbeats on a journal file.** Optuna's ``RDBStorage`` takes ``heartbeat_interval`` and
  ``grace_period``; ``JournalStorage`` does not, so a dead worker's trial would stay RUNNING for
  ever. Heartbeats are a storage mixin (``optuna.storages._heartbeat.BaseHeartbeat``) that
  ``fail_stale_trials`` (public) looks for; the journal subclass below implements it with a trial
  system attribute.
- **Beating during ask/tell.** Optuna beats only inside ``study.optimize``; a runner that trains
  through ``study.ask()``/``study.tell()`` must record the beats itself, and the storage's
  ``record_heartbeat`` takes the trial's storage id, which ``Trial`` keeps private.
"""

from __future__ import annotations

import functools
import time

HEARTBEAT_ATTR = "maitsearch:heartbeat"  # a journal trial's last beat, in its system attributes


def heartbeat_interval(study) -> int | None:
    """Seconds between beats for ``study``'s storage; None when it keeps no heartbeats."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return None
    return storage.get_heartbeat_interval()


def record_heartbeat(study, trial) -> None:
    """One beat for a running ``trial`` of ``study`` (an ask/tell trial Optuna does not beat)."""
    study._storage.record_heartbeat(trial._trial_id)


@functools.lru_cache(maxsize=1)
def _heartbeat_journal_class():
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class _HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """Optuna's journal storage with heartbeats kept as trial system attributes, so stale
        trials of dead workers are failed and retried as on RDB storages."""

        def __init__(self, backend, *, heartbeat_interval, grace_period, stale_trial_callback):
            super().__init__(backend)
            self._heartbeat_interval = heartbeat_interval
            self._grace_period = grace_period
            self._stale_trial_callback = stale_trial_callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            deadline = time.time() - self._grace_period
            return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                    if t.system_attrs.get(HEARTBEAT_ATTR, float("inf")) < deadline]

        def get_heartbeat_interval(self) -> int | None:
            return self._heartbeat_interval

        def get_heartbeat_stale_trial_callback(self):
            return self._stale_trial_callback

        def get_failed_trial_callback(self):  # the name Optuna before 4.9 asked for
            return self._stale_trial_callback

    return _HeartbeatJournalStorage


def heartbeat_journal_storage(backend, *, heartbeat_interval: int | None, grace_period: int | None,
                              stale_trial_callback):
    """A ``JournalStorage`` over ``backend`` that keeps heartbeats as ``RDBStorage`` does."""
    return _heartbeat_journal_class()(backend, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                      stale_trial_callback=stale_trial_callback)
