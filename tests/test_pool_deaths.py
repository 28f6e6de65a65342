"""A worker process of the training pool killed from outside (the system's out-of-memory killer,
a crash in native code): the units it took down run again, and only a unit whose worker dies
each time it runs alone fails. Real worker processes, really killed; the jobs below know when."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from maitsearch.events import SeedEnded, SeedStarted, WorkerDied
from maitsearch.search.base import Job, Proposal
from maitsearch.search.executors import PoolExecutor, Unit
from maitsearch.spec import preset
from maitsearch.training import TrialResult

pytestmark = pytest.mark.slow  # each death starts a fresh pool of spawned workers: seconds each


@dataclass
class Dies(Job):
    """Kills its own worker process on its first ``times`` runs (counted in ``tally``), then
    finishes; each run first waits for ``wait_for`` (its sibling has started)."""

    tally: str
    times: int
    wait_for: str | None = None

    def run(self, proxy, data, on_event):
        _wait_for(self.wait_for)
        if _count(self.tally) <= self.times:
            os.kill(os.getpid(), signal.SIGKILL)
        return TrialResult(status="complete", val_top1=0.5)

    def describe(self) -> str:
        return f"dies {self.times} time(s)"


@dataclass
class Finishes(Job):
    """Counts its runs in ``started``. Its first run stays until ``wait_for`` exists (the other
    job has begun to die) and ``seconds`` more, so the death surely finds it in flight; a later
    run finishes at once."""

    started: str
    wait_for: str | None = None
    seconds: float = 0.0

    def run(self, proxy, data, on_event):
        if _count(self.started) == 1:
            _wait_for(self.wait_for)
            time.sleep(self.seconds)
        return TrialResult(status="complete", val_top1=0.9)

    def describe(self) -> str:
        return "finishes"


def _count(path: str) -> int:
    """Append one line to ``path`` and return how many it holds: runs of a job across processes."""
    with open(path, "a") as tally:
        tally.write("run\n")
    return len(Path(path).read_text().splitlines())


def _wait_for(path: str | None) -> None:
    deadline = time.monotonic() + 120
    while path and not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def run_pool(jobs, quick_config, workers=2):
    spec = preset("none", quick_config.layers, quick_config.heads)
    units = [Unit(index=number, seed_index=0, proposal=Proposal(spec, "job", job=job), proxy=quick_config.proxy,
                  number=number) for number, job in enumerate(jobs)]
    events = []
    pool = PoolExecutor(workers, emit=events.append)
    try:
        results = {unit.number: result for unit, result in pool.run(units, strategy=None)}
    finally:
        pool.close()
    return results, events


def test_a_killed_worker_takes_its_sibling_down_and_both_run_again(quick_config, tmp_path):
    sibling, dies = tmp_path / "sibling", tmp_path / "dies"
    results, events = run_pool([Finishes(str(sibling), wait_for=str(dies), seconds=60),
                                Dies(str(dies), times=1, wait_for=str(sibling))], quick_config)
    assert results[0].status == "complete" and results[0].val_top1 == 0.9
    assert results[1].status == "complete", "died once in company: run again alone, and it finished"
    assert len(sibling.read_text().splitlines()) == 2, "the sibling's training was lost with the pool and redone"
    assert len(dies.read_text().splitlines()) == 2
    deaths = [event for event in events if isinstance(event, WorkerDied)]
    assert [sorted(event.retried) for event in deaths] == [[(0, quick_config.proxy.seed), (1, quick_config.proxy.seed)]]
    assert deaths[0].failed == ()


def test_a_unit_whose_worker_dies_each_time_alone_fails_and_the_rest_go_on(quick_config, tmp_path):
    sibling, dies = tmp_path / "sibling", tmp_path / "dies"
    results, events = run_pool([Dies(str(dies), times=99, wait_for=str(sibling)),
                                Finishes(str(sibling), wait_for=str(dies), seconds=60),
                                Finishes(str(tmp_path / "later"))], quick_config)
    assert results[0].status == "failed" and "died each time it ran alone (2 tries)" in results[0].reason
    assert len(dies.read_text().splitlines()) == 1 + PoolExecutor.SOLO_TRIES, "once in company, then alone"
    assert results[1].status == "complete" and results[2].status == "complete"
    deaths = [event for event in events if isinstance(event, WorkerDied)]
    assert [event.failed for event in deaths] == [(), (), ((0, quick_config.proxy.seed),)]
    assert not any(isinstance(event, (SeedStarted, SeedEnded)) for event in events), "jobs report themselves"


def test_workers_that_cannot_start_end_the_search_in_one_line():
    from maitsearch.errors import SearchError

    with pytest.raises(SearchError, match=r"^the training worker processes did not start \(BrokenProcessPool"):
        PoolExecutor(2, devices=("cuda:x", "cuda:x"))  # each worker's initializer fails to read its GPU
