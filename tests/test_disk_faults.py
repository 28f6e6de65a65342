"""Faults of the disk: the results folder or the trial cache turning read-only or full mid-run.
Each ends the run with one line on stderr and exit code 2, leaves every file whole, and the
same command resumes once the fault is gone."""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maitsearch import atomic
from maitsearch.errors import DiskError, MaitsearchError
from maitsearch.runs.cache import TrialCache
from maitsearch.spec import load_spec

STALL = Path(__file__).with_name("stall.py")
# Root ignores a folder's mode; without these capabilities it obeys it like any user.
AS_ANY_USER = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
               if os.geteuid() == 0 else [])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
@pytest.mark.parametrize("step", ["write", "rename"])
def test_a_failed_write_keeps_the_old_file_and_names_it_in_one_line(tmp_path, monkeypatch, code, step):
    target = tmp_path / "trials" / "1.yaml"
    atomic.write_text(target, "old: whole\n")

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync" if step == "write" else "replace", refuse)
    with pytest.raises(DiskError) as caught:
        atomic.write_text(target, "new: " + "x" * 10_000)
    message = str(caught.value)
    assert isinstance(caught.value, MaitsearchError) and caught.value.errno == code
    assert message == (f"cannot write {target}: {os.strerror(code)}; make room or make the folder writable, "
                       "then run the same command again to resume")
    assert target.read_text() == "old: whole\n"
    assert [p.name for p in target.parent.iterdir()] == ["1.yaml"], "the temp file is gone"


def test_other_os_errors_are_not_disk_faults(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as caught:
        atomic.write_text(tmp_path / "f", "x")
    assert not isinstance(caught.value, DiskError)


def test_a_read_only_cache_folder_refuses_a_claim_in_one_line(tmp_path, monkeypatch):
    cache = TrialCache(tmp_path)
    monkeypatch.setattr(os, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only")))
    with pytest.raises(DiskError, match=r"^cannot write .*claims/k\.lease: Read-only; make room"):
        cache.claims.try_claim("k")


def run_command(results: Path, *, wrapper: bool = False) -> list[str]:
    program = [str(STALL)] if wrapper else ["-m", "maitsearch"]
    return [sys.executable, *program, "run", "--config", "quick", "--epochs", "1", "--name", "disk",
            "--results", str(results)]


def readonly(*folders: Path) -> None:
    for folder in folders:
        for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            path.chmod(0o555)


def writable(*folders: Path) -> None:
    for folder in folders:
        for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            path.chmod(0o755)


def fault_mid_run(tmp_path, results: Path, cache: Path, fault, *, prefix=(), **wrapper_env):
    """Run the quick search until trial 1 trains, apply ``fault()``, let it go on: the finished
    process (returncode, stderr), and the bytes of trial 0 as the fault found them."""
    mark, go = tmp_path / "training-trial-1", tmp_path / "go"
    env = {**os.environ, "MAITSEARCH_CACHE": str(cache), "MAITSEARCH_CLAIM_GRACE": "2", "STALL_AT": "2",
           "STALL_MARK": str(mark), "STALL_GO": str(go), **wrapper_env}
    process = subprocess.Popen([*prefix, *run_command(results, wrapper=True)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not mark.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), process.stderr.read()
    trial0 = (results / "disk" / "trials" / "0.yaml").read_bytes()
    fault()
    go.touch()
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr, trial0


def assert_one_line_then_resume(returncode, stderr, trial0, results: Path, cache: Path, faulty: Path):
    assert returncode == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: cannot write {faulty}") and lines[0].endswith("to resume")
    trials = results / "disk" / "trials"
    assert (trials / "0.yaml").read_bytes() == trial0
    assert sorted(p.name for p in trials.iterdir()) == ["0.yaml"], "no torn or temp file"
    again = subprocess.run(run_command(results), capture_output=True, text=True, timeout=600,
                           env={**os.environ, "MAITSEARCH_CACHE": str(cache), "MAITSEARCH_CLAIM_GRACE": "2"})
    assert again.returncode == 0, again.stderr
    assert "resuming with 1 finished trial(s)" in again.stdout
    assert (trials / "0.yaml").read_bytes() == trial0
    assert sorted(int(p.stem) for p in trials.glob("*.yaml")) == [0, 1, 2, 3, 4]
    placements = {load_spec(path).key() for path in trials.glob("*.yaml")}
    entries, problems = TrialCache(cache).entries()
    # five trials of three placements (init repeats the sch1 baseline, calibrate repeats assign): one entry each
    assert problems == [] and len(placements) == 3 and sorted(e.key["placement"] for e in entries) == sorted(placements)
    assert not list(results.rglob("*.tmp")) and not list(cache.rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["results", "cache"])
def test_a_folder_turned_read_only_mid_run_ends_in_one_line_and_the_rerun_resumes(tmp_path, where):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root ignores folder modes, and setpriv (util-linux) is not here to drop that privilege")
    results, cache = tmp_path / "results", tmp_path / "cache"
    folder = results / "disk" if where == "results" else cache
    try:
        outcome = fault_mid_run(tmp_path, results, cache, lambda: readonly(folder), prefix=AS_ANY_USER)
    finally:
        writable(folder)
    faulty = results / "disk" / "trials" / "1.yaml" if where == "results" else cache
    assert_one_line_then_resume(*outcome, results, cache, faulty)


@pytest.mark.slow
def test_a_results_folder_full_mid_run_ends_in_one_line_and_the_rerun_resumes(tmp_path):
    """ENOSPC from every write under the run folder from trial 1 on (tests/stall.py), where no
    real filesystem can be filled; the tmpfs test below fills a real one."""
    results, cache = tmp_path / "results", tmp_path / "cache"
    outcome = fault_mid_run(tmp_path, results, cache, lambda: None, STALL_FAULT_AT="2",
                            STALL_FAULT_ERRNO=str(errno.ENOSPC), STALL_FAULT_UNDER=str(results))
    assert "No space left on device" in outcome[1]
    assert_one_line_then_resume(*outcome, results, cache, results / "disk" / "trials" / "1.yaml")


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MiB tmpfs, where this machine lets the tests mount one (root, with CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
def test_a_real_tmpfs_filled_mid_run(tmp_path, tmpfs):
    results, cache = tmpfs / "results", tmpfs / "cache"
    filler: list[Path] = []
    outcome = fault_mid_run(tmp_path, results, cache, lambda: filler.append(fill(tmpfs)))
    assert "No space left on device" in outcome[1]
    filler[0].unlink()
    assert_one_line_then_resume(*outcome, results, cache, cache)


@pytest.mark.slow
def test_a_real_tmpfs_remounted_read_only_mid_run(tmp_path, tmpfs):
    results, cache = tmpfs / "results", tmp_path / "cache"  # a lease held open for writing would block the remount

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(tmpfs)], check=True, capture_output=True)

    try:
        outcome = fault_mid_run(tmp_path, results, cache, lambda: remount("ro"))
    finally:
        remount("rw")
    assert "Read-only file system" in outcome[1]
    assert_one_line_then_resume(*outcome, results, cache, results / "disk" / "trials" / "1.yaml")
