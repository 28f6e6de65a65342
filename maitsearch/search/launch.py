"""Starting a search: the run folder a config names, how many workers train it and on which
devices, and ``run_search``, which hands them to a ``Runner`` (runner.py).

A run's name comes from a digest of what it computes, so the same command names, and resumes,
the same folder; a folder that holds another config is refused rather than mixed. Optuna runs
with several workers here start the others as spawned processes sharing the study.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..config import SearchConfig, config_identity
from ..data import ImageData
from ..errors import ConfigError, SearchError
from ..events import EventFn, HelpersWaiting
from ..runs import RunStore
from ..runs.report import reproduce_command
from ..runs.study_storage import redacted_config
from .base import Strategy
from .checks import check_config
from .devices import pin_process, worker_devices
from .executors import busy_cores, free_cores, worker_threads
from .registry import make_strategy
from .runner import Runner, RunSummary

# Settings that change how a run is executed, not what it computes: a resumed run may change them.
EXECUTION_ONLY = ("jobs", "max_failures", "description", "keep_checkpoints", "cache")


def config_digest(config: SearchConfig) -> str:
    """Identity of what a run computes: how it is executed (``EXECUTION_ONLY``) leaves it unchanged."""
    return config_identity(config, leave_out=EXECUTION_ONLY)


def default_run_name(config: SearchConfig) -> str:
    """The same command gives the same name, so re-running it resumes the run."""
    data = Path(config.proxy.data).name or "data"
    return f"{config.strategy}-{data}-l{config.layers}h{config.heads}-{config_digest(config)}"


def prepare_store(config: SearchConfig, results_root: str | Path, name: str | None) -> RunStore:
    store = RunStore(results_root, name if name is not None else default_run_name(config))
    if store.exists():
        try:
            previous = store.load_config()
        except ValueError as err:
            raise SearchError(f"run {store.name}: cannot read its search.yaml ({err}); pick another --name") from None
        if config_digest(previous) != config_digest(config):
            changed = _differences(previous.to_dict(), config.to_dict())
            raise SearchError(f"run {store.name} exists with a different config ({', '.join(changed[:4])}); "
                              f"go on with it as it was (`{reproduce_command(store, previous)}`), or pick "
                              "another --name")
    store.write_config(config.to_dict())
    return store


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key in EXECUTION_ONLY and not prefix:
            continue
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(f"{prefix}{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return out


def resolve_jobs(config: SearchConfig, run_path: Path | None = None) -> int:
    """``jobs: 0`` means one process per GPU on a GPU search (search/devices.py), else one per
    free core (cores other work leaves idle). An Optuna study on SQLite takes one worker only
    (``run_path``: the run's folder, whose own study may be SQLite from an earlier session), and
    so does a CPU Optuna run with no storage named, as it always has: its own study is then
    SQLite, whose one worker seeds the sampler, so the run repeats exactly."""
    if config.jobs > 0:
        return config.jobs
    gpus = worker_devices(config.proxy.device, 0)
    if config.strategy == "optuna":
        from ..runs.study_storage import named_storage, one_worker_only

        if one_worker_only(config.optuna.storage, run_path) or not (gpus or named_storage(config.optuna.storage)):
            return 1
    if gpus:
        return len(gpus)
    return max(1, min(free_cores(), 8))


def run_search(config: SearchConfig, *, results_root: str | Path = "results", name: str | None = None,
               strategy: Strategy | None = None, data: ImageData | None = None,
               on_event: EventFn | None = None) -> RunSummary:
    """Run (or resume) a search and write its run folder. See the module docstring.

    Optuna with ``jobs > 1`` starts ``jobs - 1`` more workers on this machine; like workers on
    other machines, they share the study through its storage (a run's own is then a journal
    file; a SQLite one is refused)."""
    own_strategy = strategy is None  # helper workers can only run the default strategy
    strategy = check_config(config, results_root, strategy)
    public = redacted_config(config)
    root_existed = Path(results_root).is_dir()
    try:
        Path(results_root).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--results {results_root}: cannot create it ({err.strerror})") from None
    store = prepare_store(public, results_root, name)
    created = not any(store.trials_dir.glob("*.yaml"))  # a new run, or one that never finished a trial
    jobs = resolve_jobs(config, store.path)
    config = config.replace(jobs=jobs)
    import torch

    helpers, threads = [], torch.get_num_threads()
    machine_load = busy_cores()  # before this run's own helpers start, or they count as other work
    helper_devices: tuple[str, ...] = ()
    if config.strategy == "optuna" and own_strategy and jobs > 1:
        helpers = start_optuna_workers(config, store, jobs - 1)
        helper_devices = worker_devices(config.proxy.device, jobs)[1:]  # this process trains on the first
        config = config.replace(jobs=1)
        # This process is a worker too: it takes the same share of the cores as the helpers,
        # or its default threads and theirs oversubscribe the machine.
        torch.set_num_threads(worker_threads(jobs))
    runner = None
    try:
        try:
            runner = Runner(config, store, strategy, data, on_event, machine_load=machine_load,
                            helper_workers=len(helpers), helper_devices=helper_devices)
        except BaseException:  # a storage that cannot be opened: leave no empty run folder behind
            if created:
                shutil.rmtree(store.path, ignore_errors=True)
                if not root_existed:
                    with contextlib.suppress(OSError):  # rmdir: only while no other run is in it
                        Path(results_root).rmdir()
            raise
        summary = runner.run()
    finally:
        torch.set_num_threads(threads)
        _join_helpers(helpers, runner, on_event)
    if helpers:  # the helpers' last trials are on disk now: choose and report from them all
        runner.show_others()
        summary = runner.finish(summary.seconds)
    from ..runs.report import write_report

    write_report(store, public, summary)
    return summary


def _join_helpers(helpers: list, runner: Runner | None, on_event: EventFn | None) -> None:
    """Wait for the helper workers; meanwhile show the trials they finish."""
    still_training = sum(helper.is_alive() for helper in helpers)
    if still_training and on_event:
        on_event(HelpersWaiting(helpers=still_training))
    for helper in helpers:
        while helper.is_alive():
            helper.join(timeout=2)
            if runner is not None:
                runner.show_others()


def start_optuna_workers(config: SearchConfig, store: RunStore, count: int) -> list:
    """``count`` extra Optuna workers in spawned processes, sharing the study; on GPUs each is
    pinned to the next GPU round-robin after this process's own (search/devices.py)."""
    import multiprocessing

    from ..errors import StorageError
    from ..runs.study_storage import one_worker_only, share_own_study

    share_own_study(config.optuna.storage, store.path)
    # SQLite here is the run's own, from an earlier session: one named is refused sooner (OptunaStrategy)
    if one_worker_only(config.optuna.storage, store.path):
        raise StorageError(f"--jobs {count + 1}: run {store.name} began its study in SQLite (study.db), which "
                           "one worker alone may use: resume it with --jobs 1, or start another --name")
    context = multiprocessing.get_context("spawn")
    devices = worker_devices(config.proxy.device, count + 1)[1:] or (None,) * count
    workers = [context.Process(target=_optuna_worker, args=(config.replace(jobs=1), str(store.path.parent),
                                                            store.name, worker_threads(count + 1), device),
                               daemon=False)
               for device in devices]
    for worker in workers:
        worker.start()
    return workers


def _optuna_worker(config: SearchConfig, results_root: str, name: str, threads: int,
                   device: str | None = None) -> None:
    import torch

    from .executors import SerialExecutor

    device = pin_process(device) if device else None  # first, before anything starts CUDA in this process
    torch.set_num_threads(threads)
    executor = SerialExecutor(device=device) if device else None
    store = RunStore(results_root, name)
    Runner(config, store, make_strategy(config), executor=executor).run()


__all__ = ["run_search", "resolve_jobs", "default_run_name", "config_digest", "RunSummary"]
