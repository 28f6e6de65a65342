"""Where an Optuna search keeps its study: SQLite (one worker), a journal file (processes on one
host; a run's own default when it starts several) or PostgreSQL (machines), all with
heartbeats so a dead worker's trial is failed and retried. Each trial's full record is kept in
the study too (``RECORD_ATTR``), so a run can be read back from its storage alone.

Storage URLs never leave this module with their password: ``redact`` is applied to everything
that is printed or written.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import random
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import StorageError
from .optuna_private import heartbeat_journal_storage

STORAGE_ENV = ("MAITSEARCH_STORAGE", "OPTUNA_STORAGE")
OWN_SQLITE, OWN_JOURNAL = "study.db", "study.journal"  # a run's own study, in its folder
_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@", re.IGNORECASE)


@contextmanager
def experimental_optuna():
    """Optuna's experimental features this project uses on purpose (heartbeats, stale-trial
    retries, metric names), without the warning each would print to every user."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


RECORD_ATTR = "maitsearch:record"  # a trial's user attribute: its spec + metrics, as mask-spec YAML


def study_name(run_name: str) -> str:
    return f"maitsearch-{run_name}"


def redact(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    if url is None:
        return None
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def redacted_config(config):
    """A SearchConfig as written and compared: storage passwords never reach a file."""
    optuna = dataclasses.replace(config.optuna, storage=redact(config.optuna.storage))
    return config.replace(optuna=optuna)


def storage_url(requested: str | None, run_path: Path) -> str:
    """The storage a run uses: the flag (or config), else $MAITSEARCH_STORAGE / $OPTUNA_STORAGE,
    else the run's own study file (``own_study``). A redacted password (``***``, as written in
    search.yaml) is filled in from the environment's URL for the same place, or left to the
    driver (PGPASSWORD, ~/.pgpass)."""
    from_env = _from_env()
    if not requested:
        return from_env or own_study(run_path)
    if ":***@" in requested:
        if from_env and redact(from_env) == requested:
            return from_env
        return requested.replace(":***@", "@")
    return requested


def own_study(run_path: Path) -> str:
    """A run's own study, in its folder: a journal when the run began with several workers on
    this host (``share_own_study``), else SQLite, which serves one worker and seeds its sampler."""
    journal = run_path / OWN_JOURNAL
    return f"journal:{journal}" if journal.exists() else f"sqlite:///{run_path / OWN_SQLITE}"


def share_own_study(requested: str | None, run_path: Path) -> None:
    """Let several workers on this host share a run with no storage named: its own study begins
    as a journal, which every worker finds in the folder, on a resume too. A run whose study
    began in SQLite keeps it (and the one-worker rule)."""
    if not named_storage(requested) and not (run_path / OWN_SQLITE).exists():
        (run_path / OWN_JOURNAL).touch()


def named_storage(requested: str | None) -> str | None:
    """The storage the flag, the config or the environment names; None: the run keeps its own."""
    return requested or _from_env()


def one_worker_only(requested: str | None, run_path: Path | None) -> bool:
    """Whether the run's study is SQLite by choice or from an earlier session: one worker may
    use it, so an automatic worker count is one."""
    url = named_storage(requested)
    if url:
        return url.startswith("sqlite")
    return run_path is not None and (run_path / OWN_SQLITE).exists()


def _from_env() -> str | None:
    return next((os.environ[name] for name in STORAGE_ENV if os.environ.get(name)), None)


def check_storage_url(url: str, *, before_run_folder: bool = False) -> None:
    """The URL names a storage maitsearch can open (nothing is connected to or created).

    ``before_run_folder``: checked before the run folder exists, a journal or SQLite file may sit
    in a folder that does not exist yet but whose parent does (``journal:results/RUN/study.journal``:
    the run creates its folder first). ``open_storage`` and ``single_worker_lock`` check again,
    strictly, once it does."""
    file = study_file(url)
    if file is not None:
        folder = file.parent.parent if before_run_folder and not file.parent.exists() else file.parent
        if not folder.is_dir():
            raise StorageError(f"--storage {url}: folder {file.parent} does not exist")
    if not url.startswith("journal:") and not re.match(r"^(sqlite|postgresql(\+\w+)?|mysql(\+\w+)?)://", url):
        raise StorageError(f"--storage {redact(url)}: unsupported storage; use journal:PATH, "
                           "sqlite:///PATH or postgresql://USER@HOST/DB")


def study_file(url: str) -> Path | None:
    """The file a journal or SQLite storage keeps its study in (None: a server, or SQLite in memory)."""
    if url.startswith("journal:"):
        return Path(url[len("journal:"):]).expanduser()
    if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
        return Path(url[len("sqlite:///"):])  # SQLAlchemy takes the path as written: no ~ expansion
    return None


def open_storage(url: str, *, heartbeat_interval: int, grace_period: int):
    """An Optuna storage for ``url`` with heartbeats and one retry of a dead worker's trial."""
    import optuna

    with experimental_optuna():
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    check_storage_url(url)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return heartbeat_journal_storage(JournalFileBackend(str(study_file(url))),
                                         heartbeat_interval=heartbeat_interval,
                                         grace_period=grace_period, stale_trial_callback=retry)
    engine_kwargs = {}
    if url.startswith("postgresql"):
        # an unreachable server must answer within seconds, not hang the worker
        engine_kwargs = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(8):
        try:
            with experimental_optuna():  # heartbeats, since 2.9
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                                  heartbeat_stale_trial_callback=retry)
        except Exception as err:  # noqa: BLE001 - driver errors vary; the user needs one clear line
            text = str(err)
            # Workers started together race to create Optuna's tables; the losers just retry.
            if attempt < 7 and any(s in text for s in ("already exists", "duplicate key", "UniqueViolation")):
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
            raise StorageError(f"--storage {redact(url)}: cannot connect: {redact(first)}") from None


def single_worker_lock(url: str):
    """SQLite is for one worker: hold an exclusive lock beside the database for the run's
    lifetime, and refuse a second worker with a pointer to the storages made for several."""
    path = study_file(url)
    if path is None or not url.startswith("sqlite:///"):  # a server, a journal, or SQLite in memory
        return None
    check_storage_url(url)  # its folder exists: the lock file must not create one for a typo
    handle = open(path.with_suffix(path.suffix + ".lock"), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StorageError(f"--storage {url}: another worker is already running on this SQLite study; "
                           "several workers need --storage journal:PATH (one host) or "
                           "--storage postgresql://USER@HOST/DB (several machines)") from None
    return handle
