"""Search workers on GPUs: one per GPU, round-robin with --jobs, pinned in their own processes,
and trial-cache keys that name the GPU model, never its index. The GPU count is injected (or
our own ``visible_gpus`` replaced for one test), so all but the last test run without CUDA."""

import json
import platform

import pytest
import torch

from maitsearch.config import OptunaSettings, SearchConfig, SupernetSettings, load_config
from maitsearch.errors import ConfigError
from maitsearch.events import RunStarted
from maitsearch.runs.cache import TRAINING_VERSION, cache_key, data_identity, digest
from maitsearch.search import devices, executors
from maitsearch.search.devices import check_devices, gpu_indices, worker_devices
from maitsearch.search.launch import config_digest, default_run_name, resolve_jobs
from maitsearch.spec import preset

from .test_cache import PROXY, SPEC

FOUR = [f"cuda:{i}" for i in range(4)]


def test_one_worker_per_gpu_and_round_robin_beyond():
    assert worker_devices("auto", 0, gpu_count=4, environ={}) == tuple(FOUR)
    assert worker_devices("cuda", 0, gpu_count=4, environ={}) == tuple(FOUR)
    assert worker_devices("auto", 6, gpu_count=4, environ={}) == ("cuda:0", "cuda:1", "cuda:2", "cuda:3",
                                                                 "cuda:0", "cuda:1")
    assert worker_devices("cuda:1,3", 0, gpu_count=4, environ={}) == ("cuda:1", "cuda:3")
    assert worker_devices("cuda:2", 3, gpu_count=4, environ={}) == ("cuda:2",) * 3
    # the CPU: no placement at all, so the executors run exactly as before
    assert worker_devices("auto", 0, gpu_count=0, environ={}) == ()
    assert worker_devices("cpu", 6, gpu_count=4, environ={}) == ()


def test_a_process_a_launcher_started_takes_its_local_rank():
    assert worker_devices("auto", 0, gpu_count=4, environ={"LOCAL_RANK": "2"}) == ("cuda:2",)
    assert worker_devices("cuda:1,3", 0, gpu_count=4, environ={"LOCAL_RANK": "1"}) == ("cuda:3",)
    assert worker_devices("auto", 0, gpu_count=0, environ={"LOCAL_RANK": "1"}) == (), "CPU nodes unchanged"
    with pytest.raises(ConfigError, match=r"^LOCAL_RANK 4: --device auto gives this process 4 GPUs \(cuda:0-3\)"):
        gpu_indices("auto", gpu_count=4, environ={"LOCAL_RANK": "4"})


@pytest.mark.parametrize("device,count,message", [
    ("cuda:3", 2, "--device cuda:3: cuda:3 is not there; this machine has 2 GPUs (cuda:0-1)"),
    ("cuda:0,1", 1, "--device cuda:0,1: cuda:1 is not there; this machine has 1 GPU (cuda:0)"),
    ("cuda", 0, "--device cuda: no CUDA GPU on this machine; use auto or cpu"),
    ("cuda:0,0", 2, "--device cuda:0,0: cuda:0 is named twice"),
    ("gpu", 2, "--device 'gpu': use auto, cpu, cuda, or GPU indices such as cuda:0 or cuda:0,1"),
    ("cuda:-1", 2, "--device 'cuda:-1': use auto, cpu, cuda"),
])
def test_bad_devices_are_one_line(device, count, message):
    with pytest.raises(ConfigError) as err:
        check_devices(device, gpu_count=count, gpu_name=lambda index: "NVIDIA H100")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_pool_of_two_gpu_models_is_refused():
    names = {0: "NVIDIA H100", 1: "NVIDIA H100", 2: "NVIDIA A100"}.get
    assert check_devices("cuda:0,1", gpu_count=3, gpu_name=names) == (0, 1)
    with pytest.raises(ConfigError, match=r"different models \(cuda:0 NVIDIA H100, cuda:1 NVIDIA H100, cuda:2 "
                                          r"NVIDIA A100\).* --device cuda:0,1$"):
        check_devices("auto", gpu_count=3, gpu_name=names)


def _placement_after(barrier):
    barrier.wait(timeout=120)  # every worker holds a probe at once: four probes, four processes
    return executors._worker_placement()


@pytest.mark.slow  # four spawned processes import torch: about 20 s on 2 busy cores
def test_four_gpus_four_pinned_processes_and_the_cpu_unchanged(monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # the node's launcher gave this job GPUs 4-7
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("MAITSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert resolve_jobs(SearchConfig()) == 4
    assert resolve_jobs(SearchConfig(jobs=6)) == 6
    assert resolve_jobs(SearchConfig(strategy="optuna")) == 4  # its own study a journal the four share
    assert resolve_jobs(SearchConfig(strategy="optuna", optuna=OptunaSettings(storage="sqlite:///s.db"))) == 1
    assert worker_devices("auto", 6) == ("cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1")
    pool = executors.make_executor(4, device="auto")
    try:
        assert isinstance(pool, executors.PoolExecutor) and pool.devices == tuple(FOUR)
        barrier = pool.pool._mp_context.Manager().Barrier(4)
        seen = [future.result(timeout=300) for future in [pool.pool.submit(_placement_after, barrier)
                                                            for _ in range(4)]]
    finally:
        pool.close()
    assert len({pid for pid, _, _ in seen}) == 4, "four processes"
    assert sorted(visible for _, _, visible in seen) == ["4", "5", "6", "7"], "one GPU each, the node's numbers"
    assert {device for _, device, _ in seen} == {"cuda:0"}, "each trains on the one GPU it sees"

    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    serial = executors.make_executor(1, device="auto")
    assert (serial.device, serial.devices) == (None, ()), "the CPU runs units with their own proxy.device"
    assert resolve_jobs(SearchConfig()) == max(1, min(executors.free_cores(), 8))


def test_the_cpu_worker_count_is_as_it_was(monkeypatch):
    """On a CPU, one worker per free core; an Optuna run that keeps its own study stays one
    worker (SQLite, which repeats the run exactly), one on a named journal or PostgreSQL takes
    the free cores."""
    from maitsearch.search import launch

    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    monkeypatch.setattr(launch, "free_cores", lambda: 3)
    monkeypatch.delenv("MAITSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert resolve_jobs(SearchConfig()) == 3
    assert resolve_jobs(SearchConfig(strategy="optuna")) == 1
    assert resolve_jobs(SearchConfig(strategy="optuna", optuna=OptunaSettings(storage="journal:s.journal"))) == 3
    assert resolve_jobs(SearchConfig(strategy="optuna", jobs=2)) == 2  # asked for: its own study becomes a journal
    monkeypatch.setenv("MAITSEARCH_STORAGE", "postgresql://u@h/db")
    assert resolve_jobs(SearchConfig(strategy="optuna")) == 3


def test_the_start_line_says_where_the_workers_are():
    from rich.console import Console

    from maitsearch.cli.progress import RunView, make_progress

    def start_line(**fields):
        console = Console(record=True, width=300)
        RunView(console, make_progress(console))(RunStarted(name="r", path="p", strategy="als", resumed=0, **fields))
        return console.export_text().splitlines()[1]

    assert start_line(workers=4, devices=tuple(FOUR)) == "training in 4 process(es), one per GPU: cuda:0-3"
    assert start_line(workers=6, devices=tuple(FOUR + FOUR[:2])) == ("training in 6 process(es), round-robin over "
                                                                     "4 GPUs: cuda:0,1,2,3,0,1")
    assert start_line(workers=2, devices=("cuda:1", "cuda:3")) == "training in 2 process(es), one per GPU: cuda:1,3"
    assert start_line(workers=2, threads=1, cores=2) == ("training in 2 process(es) x 1 thread(s); 0.0 of 2 cores "
                                                         "busy with other work"), "the CPU line as it was"


def test_cache_keys_name_the_gpu_model_not_its_index(monkeypatch):
    """The same GPU model on cuda:0 and cuda:3 computes the same numbers: one key. Another model,
    or the CPU, keeps its own."""
    gpus = {"model": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr("maitsearch.runs.cache.gpu_name", lambda device: None if device == "cpu" else gpus["model"])
    keys = {device: digest(cache_key(SPEC, PROXY.replace(device=device), threads=threads))
            for device, threads in (("cuda:0", 1), ("cuda:3", 4), ("cuda:0,1", 2), ("cuda", 1), ("auto", 8))}
    assert len(set(keys.values())) == 1, keys
    key = cache_key(SPEC, PROXY.replace(device="cuda:3"), threads=4)
    assert key["machine"] == "cuda:NVIDIA H100 80GB HBM3" and key["proxy"]["device"] == "cuda"
    gpus["model"] = "NVIDIA A100-SXM4-80GB"
    assert digest(cache_key(SPEC, PROXY.replace(device="cuda:0"), threads=1)) != keys["cuda:0"]
    assert cache_key(SPEC, PROXY.replace(device="cpu"), threads=1)["machine"].startswith("cpu:")


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto trains on the GPU here")
def test_cpu_keys_are_byte_identical_to_the_keys_before_gpu_workers():
    """The key as the code before this change built it, written out by hand."""
    import hashlib
    from pathlib import Path

    block = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split("\n\n")[0]
    fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
    flags = "|".join(fields.get(name, "").strip() for name in ("vendor_id", "cpu family", "model", "flags"))
    machine = (f"cpu:{platform.machine()}:{torch.backends.cpu.get_cpu_capability()}:"
               f"{hashlib.sha256(flags.encode()).hexdigest()[:12]}")
    for device in ("auto", "cpu"):
        proxy = PROXY.replace(device=device)
        before = {"version": TRAINING_VERSION, "torch": torch.__version__, "threads": 1, "machine": machine,
                  "placement": SPEC.key(),  # the fields the key had before pool and train_copies existed
                  "proxy": {k: v for k, v in proxy.to_dict().items() if k not in ("pool", "train_copies")},
                  "data": data_identity(proxy.data)}
        assert json.dumps(cache_key(SPEC, proxy, threads=1), sort_keys=True) == json.dumps(before, sort_keys=True)


def test_which_gpus_a_run_got_is_not_part_of_its_identity():
    base = SearchConfig()
    names = {device: default_run_name(base.replace(proxy=base.proxy.replace(device=device)))
             for device in ("cuda", "cuda:0,1", "cuda:2,3", "cuda:5")}
    assert len(set(names.values())) == 1, names
    # auto and cpu keep the digests runs were named by before (computed with the code before this change)
    assert config_digest(base) == "2bd518"
    assert config_digest(base.replace(proxy=base.proxy.replace(device="cpu"))) == "87c6c6"
    # quick's own digest moved when the preset gained a supernet section (a change of the preset)
    assert default_run_name(load_config("quick").replace(supernet=SupernetSettings())) == "als-digits-l4h3-eac1de"


def presets_search(device: str, results, digits, *, epochs: int, jobs: int | None = None):
    """A quick presets run of none, sch1 and all on ``device`` (with the quick preset's jobs
    unless given): its RunStarted and summary."""
    from maitsearch.search.launch import run_search

    config = load_config("quick").replace(strategy="presets", baselines=["none", "sch1", "all"])
    config = config if jobs is None else config.replace(jobs=jobs)
    config = config.replace(proxy=config.proxy.replace(device=device, epochs=epochs))
    events = []
    summary = run_search(config, results_root=results, name="gpus", data=digits, on_event=events.append)
    (started,) = [event for event in events if isinstance(event, RunStarted)]
    return started, summary


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_a_two_worker_search_on_two_real_gpus(tmp_path, digits):
    started, summary = presets_search("cuda:0,1", tmp_path, digits, epochs=2, jobs=0)  # 0: one per GPU
    assert started.workers == 2 and started.devices == ("cuda:0", "cuda:1")
    assert [record.state for record in summary.records] == ["complete"] * 3
    assert preset("none", 4, 3).key() in {record.spec.key() for record in summary.records}


@pytest.mark.parametrize("command", ["run", "calibrate"])
def test_a_gpu_the_machine_lacks_is_one_line_and_writes_nothing(command, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maitsearch.cli import app

    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    result = CliRunner().invoke(app, [command, "--config", "quick", "--device", "cuda:3",
                                      "--results", str(tmp_path / "results")])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "error: --device cuda:3: cuda:3 is not there; this machine has 2 GPUs (cuda:0-1)"]
    assert not (tmp_path / "results").exists()
