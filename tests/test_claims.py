"""Claims on trial-cache keys (runs/claims.py): one worker trains a key, the others wait for it,
and a dead worker's claim is broken after the grace period."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from maitsearch.events import WorkerEpoch
from maitsearch.runs.claims import RECORD_SIZE, Claims, Watch
from maitsearch.search.base import Proposal
from maitsearch.search.executors import PoolExecutor, Unit
from maitsearch.spec import load_spec

from .test_cache import PROXY, SPEC

STALL = Path(__file__).with_name("stall.py")


def write_lease(claims: Claims, name: str, token: str, heartbeat: float, pid: int = 4242, host: str = "elsewhere"):
    """A lease as another host's worker leaves it: its pid means nothing here."""
    claims.folder.mkdir(parents=True, exist_ok=True)
    record = {"host": host, "pid": pid, "token": token, "started": heartbeat, "heartbeat": heartbeat, "beat": 1}
    claims.path(name).write_bytes(json.dumps(record).encode().ljust(RECORD_SIZE))


def test_one_worker_gets_the_claim_and_its_heartbeat_keeps_it_alive(tmp_path):
    mine, theirs = Claims(tmp_path, grace=1.2), Claims(tmp_path, grace=1.2)
    lease = mine.try_claim("k")
    assert lease is not None and theirs.try_claim("k") is None
    watch = Watch(theirs, "k")
    assert watch.look() == "alive"
    assert (watch.holder.pid, watch.holder.host, watch.holder.token) == (os.getpid(), socket.gethostname(), lease.token)
    first = watch.seen
    deadline = time.monotonic() + 30
    while watch.seen == first and time.monotonic() < deadline:  # the heartbeat thread rewrites it every 0.2 s
        assert watch.look() == "alive"
        time.sleep(0.05)
    assert watch.seen != first and json.loads(watch.seen)["beat"] > 1
    mine.release(lease)
    assert watch.look() == "free" and not list(mine.folder.iterdir()), "no lease and no tombstone left"
    assert theirs.try_claim("k") is not None


def test_a_silent_lease_goes_stale_by_the_waiters_clock_and_one_breaker_wins(tmp_path):
    breakers = [Claims(tmp_path, grace=0.3) for _ in range(3)]
    # a heartbeat stamped an hour ahead: another host's clock, never compared with this one's
    write_lease(breakers[0], "k", "dead", heartbeat=time.time() + 3600)
    watch = Watch(breakers[0], "k")
    assert watch.look() == "alive", "a lease first seen is trusted for a grace period"
    time.sleep(0.4)
    assert watch.look() == "stale"
    assert [b.break_stale("k", watch.holder) for b in breakers] == [True, False, False]
    assert not list(breakers[0].folder.iterdir()), "no lease and no tombstone left"


def test_a_breaker_that_judged_an_older_lease_puts_the_new_one_back(tmp_path):
    claims = Claims(tmp_path, grace=0.3)
    write_lease(claims, "k", "dead", heartbeat=time.time())
    watch = Watch(claims, "k")
    watch.look()
    stale_holder = watch.holder
    write_lease(claims, "k", "alive-newcomer", heartbeat=time.time())  # another breaker won and re-claimed
    assert claims.break_stale("k", stale_holder) is False
    assert json.loads(claims.path("k").read_bytes())["token"] == "alive-newcomer"
    assert [p.name for p in claims.folder.iterdir()] == ["k.lease"]


def test_a_holder_whose_lease_was_broken_never_writes_over_the_new_one(tmp_path):
    slow, other = Claims(tmp_path, grace=0.6), Claims(tmp_path, grace=0.6)
    lease = slow.try_claim("k")
    with slow._lock:  # the holder stops beating, as a stopped process does
        watch = Watch(other, "k")
        watch.look()
        assert other.break_stale("k", watch.holder)
        newcomer = other.try_claim("k")
    deadline = time.monotonic() + 30
    while lease.beats < 3 and time.monotonic() < deadline:  # the old holder beats again, into its own inode
        time.sleep(0.05)
    assert json.loads(other.path("k").read_bytes())["token"] == newcomer.token
    slow.release(lease)
    assert json.loads(other.path("k").read_bytes())["token"] == newcomer.token, "release took only its own lease"
    other.release(newcomer)


class Output:
    """A process's stdout, read line by line on a thread, so a test can wait for one line."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(process.stdout), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, process: subprocess.Popen, seconds: float = 300) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if found:
                return found[0]
            assert process.poll() is None or any(text in line for line in self.lines), "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in: {''.join(self.lines)}")


def baseline_run(tmp_path, name, env, seeds=1, **stall):
    command = [sys.executable, str(STALL), "run", "--config", "quick", "--strategy", "presets", "--baselines", "none",
               "--epochs", "1", "--seeds", str(seeds), "--name", name, "--results", str(tmp_path / "results")]
    extra = {key: str(value) for key, value in stall.items()}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, **extra})


def trainings(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def shared(tmp_path):
    log = tmp_path / "trainings.log"
    env = {**os.environ, "MAITSEARCH_CACHE": str(tmp_path / "cache"), "STALL_LOG": str(log),
           "MAITSEARCH_CLAIM_GRACE": "3"}
    return env, log


@pytest.mark.slow
def test_two_processes_asking_for_one_key_train_it_once(tmp_path, shared):
    env, log = shared
    mark, go = tmp_path / "first-is-training", tmp_path / "go"
    first = baseline_run(tmp_path, "first", env, STALL_AT=1, STALL_MARK=mark, STALL_GO=go)
    deadline = time.monotonic() + 300
    while not mark.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), first.stderr.read()
    second = baseline_run(tmp_path, "second", env)
    line = Output(second).wait_for("waiting for", second)
    assert line.strip() == f"waiting for 0000 seed 0, trained by pid {first.pid} on {socket.gethostname()}"
    go.touch()  # the first one trains now, while the second waits
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    starts = [entry for entry in trainings(log) if entry[0] == "start"]
    assert [entry[1] for entry in starts] == [str(first.pid)], "the second process never trained"
    ran, waited = (load_spec(tmp_path / "results" / name / "trials" / "0.yaml").meta for name in ("first", "second"))
    assert "cached_seeds" not in ran and waited["cached_seeds"] == 1
    assert waited["top1_seeds"] == ran["top1_seeds"] and waited["als"] == ran["als"]
    assert not list((tmp_path / "cache" / "claims").iterdir()), "both claims released"


@pytest.mark.slow
def test_two_runs_of_the_same_seeds_share_them_out_instead_of_one_waiting_for_all(tmp_path, shared):
    """A worker claims a seed when it starts training it, not when its run queues it: the second
    run trains the seed the first has not reached, so the pair finishes in half the time."""
    env, log = shared
    mark, go = tmp_path / "first-is-training", tmp_path / "go"
    first = baseline_run(tmp_path, "first", env, seeds=2, STALL_AT=1, STALL_MARK=mark, STALL_GO=go)
    deadline = time.monotonic() + 300
    while not mark.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), first.stderr.read()
    second = baseline_run(tmp_path, "second", env, seeds=2)
    Output(second).wait_for("waiting for 0000 seed 0", second)
    deadline = time.monotonic() + 300  # seed 1 is free while the first run is still on seed 0
    while not [e for e in trainings(log) if e[:2] == ["start", str(second.pid)]] and time.monotonic() < deadline:
        assert second.poll() is None, second.stderr.read()
        time.sleep(0.05)
    go.touch()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    starts = [(entry[1], entry[3]) for entry in trainings(log) if entry[0] == "start"]
    assert starts == [(str(first.pid), "0"), (str(second.pid), "1")], "each seed trained once, one by each run"
    trials = [load_spec(tmp_path / "results" / name / "trials" / "0.yaml").meta for name in ("first", "second")]
    assert [meta["cached_seeds"] for meta in trials] == [1, 1], "each run took the other's seed from the cache"
    assert trials[0]["top1_seeds"] == trials[1]["top1_seeds"]
    assert not list((tmp_path / "cache" / "claims").iterdir()), "every claim released"


@pytest.mark.slow  # two spawned workers import torch
def test_a_pool_takes_the_next_unit_only_when_a_worker_is_free():
    """The runner claims a unit as the executor takes it, so a pool must not take its whole queue
    at once: the third unit of two workers waits until one of the first two has trained."""
    seen: list[tuple[str, int]] = []
    pool = PoolExecutor(2, emit=lambda event: seen.append(("epoch", event.number))
                        if isinstance(event, WorkerEpoch) else None)
    units = [Unit(index, 0, Proposal(SPEC, "test"), PROXY.replace(seed=index), number=index) for index in range(3)]

    def taken():
        for unit in units:
            seen.append(("take", unit.number))
            yield unit

    try:
        results = list(pool.run(taken(), strategy=None))
    finally:
        pool.close()
    assert sorted((unit.number, result.status) for unit, result in results) == [(0, "complete"), (1, "complete"),
                                                                             (2, "complete")]
    third = seen.index(("take", 2))
    assert seen[:2] == [("take", 0), ("take", 1)]
    assert ("epoch", 0) in seen[:third] or ("epoch", 1) in seen[:third], "taken only once a worker was free"


@pytest.mark.slow
def test_a_killed_claimants_lease_is_broken_after_the_grace_period_and_trained_once_more(tmp_path, shared):
    env, log = shared
    mark = tmp_path / "victim-is-training"
    victim = baseline_run(tmp_path, "victim", env, STALL_AT=1, STALL_MARK=mark)  # stalls until killed
    deadline = time.monotonic() + 300
    while not mark.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), victim.stderr.read()
    heir = baseline_run(tmp_path, "heir", env)
    output = Output(heir)
    output.wait_for("waiting for", heir)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    broke = output.wait_for("claim on", heir)
    # the last beat came at most one heartbeat interval (0.5 s) before the kill
    assert time.monotonic() - killed_at >= 2.4, "not before the grace period"
    assert broke.startswith(f"claim on 0000 seed 0 by pid {victim.pid} on {socket.gethostname()} silent for ")
    assert heir.wait(timeout=300) == 0, heir.stderr.read()
    entries = trainings(log)
    assert [(e[0], e[1]) for e in entries] == [("start", str(victim.pid)), ("start", str(heir.pid)),
                                               ("end", str(heir.pid))]
    meta = load_spec(tmp_path / "results" / "heir" / "trials" / "0.yaml").meta
    assert meta["state"] == "complete" and "cached_seeds" not in meta
    assert not list((tmp_path / "cache" / "claims").iterdir()), "the broken lease and the heir's are gone"
