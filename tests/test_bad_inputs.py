"""Every bad input we know of, each answered with one line (and exit code 2 through the CLI)."""

import os
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.runs import RunStore
from maitsearch.spec import preset
from maitsearch.errors import ResumeError
from maitsearch.training.full import load_checkpoint

from .test_spec import BAD_SPECS, _expectation

runner = CliRunner()


def one_line_error(args, code=2):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == "", "the one line is all it prints: no empty progress display either"
    return lines[0]


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_malformed_spec(path):
    assert one_line_error(["spec", "check", path]).startswith(f"{path}:{_expectation(path)}")


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "nul\x00byte", "x" * 300, ".", "..", ".hidden",
                                  "spaces in name", ""])
def test_bad_run_names(name, tmp_path):
    line = one_line_error(["run", "--config", "quick", "--name", name, "--results", tmp_path])
    assert line.startswith("error: --name ") and "a run name is 1-100 letters" in line
    assert not any(tmp_path.iterdir()), "nothing was written"
    with pytest.raises(ValueError):
        RunStore(tmp_path, name)


def test_a_run_named_like_a_file_in_the_results_folder_is_refused(tmp_path):
    (tmp_path / "notes").write_text("mine\n")
    line = one_line_error(["run", "--config", "quick", "--name", "notes", "--results", tmp_path])
    assert line == f"error: --name notes: {tmp_path / 'notes'} is a file, not a run folder; pick another name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"] and (tmp_path / "notes").read_text() == "mine\n"


def test_results_for_a_run_that_is_not_there_says_where_it_looked(tmp_path):
    missing = tmp_path / "elsewhere"
    assert one_line_error(["results", "nosuch", "--results", missing]) == (
        f"error: no run 'nosuch': no folder {missing} here (--results names where run folders live)")
    (tmp_path / "other").mkdir()
    assert one_line_error(["results", "nosuch", "--results", tmp_path]) == (
        f"error: no run 'nosuch' under {tmp_path} (`maitsearch results --results {tmp_path}` lists them)")


def test_results_from_a_storage_without_the_run_says_what_it_holds_and_creates_nothing(tmp_path):
    import optuna

    missing = tmp_path / "typo.db"
    assert one_line_error(["results", "r", "--storage", f"sqlite:///{missing}"]) == (
        f"error: --storage sqlite:///{missing}: no such file")
    assert not missing.exists(), "reading must not create an empty study database"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="maitsearch-other", storage=url)
    line = one_line_error(["results", "r", "--storage", url])
    assert line == f"error: --storage {url}: no run 'r' there; it holds other"
    line = one_line_error(["results", "--storage", url])  # not the results folder's list, as if it were ignored
    assert line == f"error: --storage: name the run to read from it; {url} holds other"


@pytest.mark.parametrize("flag", [["--plot"], ["--trial", "0"]])
def test_figures_of_no_run_are_refused_not_ignored(flag, tmp_path):
    assert one_line_error(["results", *flag, "--results", tmp_path]) == (
        f"error: {flag[0]}: name exactly one run (figures are drawn per run)")


def test_a_run_whose_search_yaml_is_torn_costs_one_line_naming_the_file_and_line(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "search.yaml").write_text("{{torn")
    torn = f"{tmp_path}/r/search.yaml:1: invalid YAML: "
    line = one_line_error(["run", "--config", "quick", "--name", "r", "--results", tmp_path])
    assert line.startswith(f"error: run r: cannot read its search.yaml ({torn}") and line.endswith("; pick another --name")
    assert one_line_error(["confirm", "r", "--results", tmp_path]).startswith(f"error: {torn}")


def test_exporting_a_spec_from_a_transfer_study_names_its_two_runs(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "transfer.yaml").write_text("kendall_tau: 0.5\n")
    line = one_line_error(["export", "study", "-o", tmp_path / "best.yaml", "--results", tmp_path])
    assert line == (f"error: study is a transfer study, whose trials are in its runs: export {tmp_path}/study/proxy "
                    f"or {tmp_path}/study/target")


@pytest.mark.parametrize("flag", ["--sort", "--strategy", "--dataset"])
def test_list_options_with_runs_named_are_refused_not_ignored(flag, tmp_path):
    assert one_line_error(["results", "some-run", flag, "als", "--results", tmp_path]) == (
        f"error: {flag}: sorts or filters the list of runs; leave out the run names to list them")


@pytest.mark.parametrize("storage,expected", [
    ("mongodb://user:pw@db/x", "--storage mongodb://user:***@db/x: unsupported storage; use journal:PATH"),
    ("journal:/no/such/folder/study.log", "--storage journal:/no/such/folder/study.log: folder /no/such/folder does not exist"),
    ("sqlite:////no/such/folder/study.db", "--storage sqlite:////no/such/folder/study.db: folder /no/such/folder does "
                                           "not exist"),
    ("postgresql://user:pw@127.0.0.1:1/db", "--storage postgresql://user:***@127.0.0.1:1/db: cannot connect: "),
])
def test_bad_storage_urls(storage, expected, tmp_path):
    line = one_line_error(["run", "--config", "quick", "--strategy", "optuna", "--storage", storage,
                           "--results", tmp_path, "--name", "s"])
    assert line.startswith(f"error: {expected}") and ":pw@" not in line


@pytest.mark.parametrize("scheme, file", [("journal:", "study.log"), ("sqlite:///", "study.db")])
def test_a_study_file_in_a_missing_folder_other_than_the_run_leaves_nothing(tmp_path, scheme, file):
    """A journal or SQLite folder that is not there is only fine when it is the run's own (created
    with the run): any other is refused once the run folder exists, and the new folders (the run's,
    and the results folder it made) are removed again; SQLite's lock file made none for the typo."""
    url = f"{scheme}{tmp_path}/typo/{file}"
    line = one_line_error(["run", "--config", "quick", "--strategy", "optuna", "--results", tmp_path / "results",
                           "--name", "s", "--storage", url])
    assert line == f"error: --storage {url}: folder {tmp_path}/typo does not exist"
    assert not any(tmp_path.iterdir()), "nothing was written"


def test_sqlite_in_memory_takes_no_lock_file(tmp_path, monkeypatch):
    from maitsearch.runs.study_storage import single_worker_lock

    monkeypatch.chdir(tmp_path)
    assert single_worker_lock("sqlite:///:memory:") is None and not any(tmp_path.iterdir())
    handle = single_worker_lock("sqlite:///study.db")  # a file's study: locked beside it
    assert [path.name for path in tmp_path.iterdir()] == ["study.db.lock"]
    handle.close()


def test_several_workers_on_sqlite_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MAITSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    optuna_run = ["run", "--config", "quick", "--strategy", "optuna", "--jobs", "2", "--results", tmp_path]
    line = one_line_error([*optuna_run, "--name", "t", "--storage", f"sqlite:///{tmp_path}/x.db"])
    assert line == (f"error: --jobs 2: several Optuna workers cannot share SQLite (sqlite:///{tmp_path}/x.db); use "
                    "--storage journal:PATH (one host), postgresql://USER@HOST/DB, or none (the run's own)")
    assert not any(tmp_path.iterdir()), "nothing was written"
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.db").touch()  # the run's own study, begun by one worker in an earlier session
    line = one_line_error([*optuna_run, "--name", "s"])
    assert line == ("error: --jobs 2: run s began its study in SQLite (study.db), which one worker alone may use: "
                    "resume it with --jobs 1, or start another --name")
    assert not (tmp_path / "s" / "study.journal").exists()


def test_unreachable_database_answers_within_its_connect_timeout(tmp_path, monkeypatch):
    """The answer's time is the driver's connect timeout, not the machine's load: every attempt
    to connect is seen to carry the 5 s timeout, and the attempts are few."""
    from sqlalchemy.engine import default

    attempts, real_connect = [], default.DefaultDialect.connect

    def timed_connect(self, *cargs, **cparams):
        start = time.monotonic()
        try:
            return real_connect(self, *cargs, **cparams)
        finally:
            attempts.append((cparams.get("connect_timeout"), time.monotonic() - start))

    monkeypatch.setattr(default.DefaultDialect, "connect", timed_connect)
    line = one_line_error(["run", "--config", "quick", "--strategy", "optuna", "--results", tmp_path, "--name", "u",
                           "--storage", "postgresql://user:hunter2@10.255.255.1:5432/db"])
    assert "cannot connect" in line and "hunter2" not in line and "user:***@" in line
    assert 1 <= len(attempts) <= 2 and all(timeout == 5 for timeout, _ in attempts), attempts
    # libpq's own timer ends each attempt; the bound leaves room for a machine too busy to run us on time
    assert all(seconds < 5 + 25 for _, seconds in attempts), attempts


def test_storage_flag_needs_the_optuna_strategy(tmp_path):
    line = one_line_error(["run", "--config", "quick", "--storage", "journal:x.log", "--results", tmp_path])
    assert line == "error: --storage: only the optuna strategy keeps a study; this run uses als"


@pytest.mark.parametrize("data", ["nonexistent-set", "/no/such/path", "EMPTY"])
def test_bad_data(tmp_path, data):
    if data == "EMPTY":
        data = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    spec = preset("sch1", 12, 3).save(tmp_path / "spec.yaml")
    assert one_line_error(["train", "--spec", spec, "--data", data, "--out", tmp_path / "o"]).startswith("error: --data")
    assert one_line_error(["run", "--config", "quick", "--data", data, "--results", tmp_path]).startswith("error: --data")


def test_bad_config_preset(tmp_path):
    line = one_line_error(["run", "--config", "no-such-preset", "--results", tmp_path])
    assert line.startswith("error: --config no-such-preset: no such file or preset (presets: ")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: als\nprox: {}\n")
    assert "unknown field(s) prox" in one_line_error(["run", "--config", bad, "--results", tmp_path])


def test_bad_baseline_placements(tmp_path):
    line = one_line_error(["run", "--config", "quick", "--baselines", "none,sch9", "--results", tmp_path])
    assert line == ("error: placement sch9: not a preset (none, sch1, sch2, sch3, all, random), a spec file "
                    "(NAME.yaml) or compact head bits (sch1 is 1111)")
    missing = tmp_path / "gone.yaml"
    line = one_line_error(["run", "--config", "quick", "--baselines", missing, "--results", tmp_path])
    assert line == f"error: {missing}: file: no such file"


def test_a_cache_folder_from_the_environment_that_takes_no_files_is_named_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("MAITSEARCH_CACHE", "/proc/nope")
    line = one_line_error(["run", "--config", "quick", "--results", tmp_path / "results"])
    assert line == "error: $MAITSEARCH_CACHE /proc/nope: cannot create folders in /proc (No such file or directory)"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("torn,expected", [("model.safetensors", "not a readable safetensors file ("),
                                            ("config.json", "not valid JSON (")])
def test_a_trained_folder_with_a_torn_file_costs_one_line_naming_it(torn, expected, tmp_path):
    import timm

    from maitsearch.model.export import save_pretrained

    folder = tmp_path / "trained"
    save_pretrained(timm.create_model("mait_xtiny_patch16_224", mask_spec="sch1", depth=1, img_size=32), folder)
    (folder / torn).write_text("{torn")
    line = one_line_error(["export", folder, "--save-dir", tmp_path / "out"])
    assert line.startswith(f"error: {folder / torn}: {expected}"), line


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "epoch": 1, "evil": Payload()}, path)
    with pytest.raises(ResumeError, match="checkpoint.pt: refused: not a checkpoint of plain tensors"):
        load_checkpoint(path)
    spec = preset("sch1", 12, 3).save(tmp_path / "spec.yaml")
    line = one_line_error(["train", "--spec", spec, "--out", tmp_path, "--resume"])
    assert line.startswith(f"error: --resume {path}: refused: ") and "pwned" not in line


@pytest.mark.parametrize("name,expected", [("w.pt", "refused: not a checkpoint of plain tensors (torch.load: "),
                                           ("w.safetensors", "not a readable safetensors file (")])
def test_weights_that_cannot_be_read_cost_one_line_naming_them(name, expected, tmp_path):
    junk = tmp_path / name
    junk.write_text("not weights\n")
    line = one_line_error(["export", "--spec", "sch2", "--weights", junk, "--save-dir", tmp_path / "out"])
    assert line.startswith(f"error: --weights {junk}: {expected}"), line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url,shown", [
    ("postgresql://alice:s3cr3t@db.example:5432/x", "postgresql://alice:***@db.example:5432/x"),
    ("postgresql+psycopg://bob:p%40ss@10.0.0.1/x", "postgresql+psycopg://bob:***@10.0.0.1/x"),
    ("journal:/tmp/study.log", "journal:/tmp/study.log"),
    ("sqlite:///results/x/study.db", "sqlite:///results/x/study.db"),
])
def test_storage_urls_are_redacted(url, shown, monkeypatch, tmp_path):
    from maitsearch.runs.study_storage import STORAGE_ENV, redact, storage_url

    assert redact(url) == shown
    for name in STORAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    # search.yaml holds the redacted URL: the password comes back from the environment only,
    # and without it the driver's own sources (PGPASSWORD, ~/.pgpass) are left to supply it
    assert storage_url(shown, tmp_path) == shown.replace(":***@", "@")
    monkeypatch.setenv("MAITSEARCH_STORAGE", url)
    assert storage_url(shown, tmp_path) == url


# ---- a newcomer's first hour (issue 17): every mistake one line, exit 2, nothing written -------
SPEC_FILE = "spec.yaml"
FIRST_HOUR = {
    "unknown model": (["train", "--model", "nosuchmodel", "--spec", SPEC_FILE], "error: --model nosuchmodel: not a timm model"),
    "near-miss model": (["train", "--model", "deit_tiny_patch16_22", "--spec", SPEC_FILE], "error: --model deit_tiny_patch16_22: not a timm model; did you mean deit_tiny_patch16_224"),
    "not a vit": (["train", "--model", "resnet18", "--spec", SPEC_FILE, "--depth", "12"], "error: --model resnet18"),
    "gpu that is not there": (["train", "--device", "cuda", "--spec", SPEC_FILE], "error: device cuda: no CUDA GPU"),
    "preset for a cnn": (["train", "--model", "resnet18", "--spec", "sch2"],
                         "error: --model resnet18: not a timm ViT or CaiT, so it has no heads to mask"),
    "neither file nor preset": (["train", "--spec", "sch9"],
                                "error: --spec sch9: no such file, nor a preset (none, sch1, sch2, sch3, all, random) or "
                                "compact text"),
    "spec of another depth": (["train", "--spec", SPEC_FILE, "--depth", "4", "--img-size", "32"],
                              "error: --spec spec.yaml: 12 layers x 3 heads, but mait_tiny_patch16_224 has 4 x 3; "
                              "--depth 12 builds it at the spec's depth"),
    "flex on the cpu": (["train", "--kernel", "flex", "--device", "cpu", "--spec", SPEC_FILE],
                        "error: --kernel flex: FlexAttention trains on CUDA only (torch has no cpu backward for it)"),
    "unknown kernel": (["train", "--kernel", "fast", "--spec", SPEC_FILE], "error: --kernel: unknown 'fast'"),
    "results in /proc": (["run", "--config", "quick", "--results", "/proc/nope"], "error: --results /proc/nope: cannot"),
    "cache in /proc": (["run", "--config", "quick", "--cache", "/proc/nope"], "error: --cache /proc/nope: cannot"),
    "depth 0": (["train", "--spec", "sch1", "--depth", "0"], "error: --depth 0: expected at least 1"),  # not a preset
    "image below a patch": (["train", "--spec", "sch1", "--img-size", "8"],
                            "error: --img-size 8: smaller than mait_tiny_patch16_224's patches (16x16)"),
    "smoothing every label flat": (["train", "--spec", SPEC_FILE, "--smoothing", "1"],
                                   "error: --smoothing 1.0: expected at least 0 and below 1"),
    "a spec as the search config": (["run", "--config", SPEC_FILE],
                                    f"error: --config {SPEC_FILE}: a mask spec, not a search config; train it with"),
    "training out is a file": (["train", "--spec", SPEC_FILE, "--out", f"{SPEC_FILE}/run"],
                               f"error: --out {SPEC_FILE}/run: "),
    "torchvision set, no data dir": (["run", "--config", "quick", "--data", "cifar10"],
                                     "error: --data-dir data: no such directory for cifar10"),
    "budgets not numbers": (["calibrate", "--budgets", "a,b"], "error: --budgets 'a,b': expected whole multiples"),
    "heads that do not split the width": (["run", "--heads", "5"], "error: proxy.width 48 does not split into 5 "
                                          "heads: give --width (or proxy.width) a multiple of 5, such as 50"),
    "zero layers": (["run", "--layers", "0"], "error: --layers: "),
    "negative heads": (["run", "--heads", "-1"], "error: --heads: "),
    "unknown flag": (["run", "--bogus"], "error: No such option: --bogus"),
    "strategy": (["run", "--config", "quick", "--strategy", "bogus"], "error: strategy: unknown 'bogus'; choose one of als, optuna, presets, soft, supernet"),
    "even window": (["run", "--config", "quick", "--window", "4x4"], "error: window: window sizes must be odd"),
    "window of one number": (["run", "--config", "quick", "--window", "3"],
                             "error: --window '3': expected ROWSxCOLS such as 3x3"),
    "semantics": (["run", "--config", "quick", "--semantics", "foo"], "error: semantics: must be one of paper, local"),
    "baseline": (["run", "--config", "quick", "--baselines", "sch9"], "error: placement sch9: not a preset"),
    "presets of nothing": (["run", "--config", "quick", "--strategy", "presets", "--baselines", ""],
                           "error: --baselines: the presets strategy trains these side by side; name at least one"),
    "space": (["run", "--config", "quick", "--strategy", "optuna", "--space", "weird"], "error: optuna.space: unknown"),
    "sampler": (["run", "--config", "quick", "--strategy", "optuna", "--sampler", "nope"], "error: optuna.sampler: unknown"),
    "optuna flag to als": (["run", "--config", "quick", "--sampler", "random"],
                           "error: --sampler: only the optuna and supernet strategies read it; this run uses als"),
    "pruner to supernet": (["run", "--config", "quick", "--strategy", "supernet", "--pruner", "none"],
                           "error: --pruner: only the optuna strategy reads it; this run uses supernet"),
    "round to optuna": (["run", "--config", "quick", "--strategy", "optuna", "--no-round"],
                        "error: --round/--no-round: only the soft strategy reads it; this run uses optuna"),
    "supernet sampler": (["run", "--config", "quick", "--strategy", "supernet", "--sampler", "gp"],
                         "error: optuna.sampler (supernet): unknown 'gp'; choose one of tpe, nsga2, random"),
    "output folder missing": (["spec", "preset", "sch1", "-L", "2", "-H", "3", "-o", "/nonexistent/dir/x.yaml"],
                              "error: --output /nonexistent/dir/x.yaml: folder /nonexistent/dir does not exist"),
    "onnx file named as a folder": (["export", "--spec", "sch2", "--onnx", ".."],
                                    "error: --onnx ..: a folder; name the file to write in it"),
    "weights folder is a file": (["export", "--spec", "sch2", "--save-dir", SPEC_FILE],
                                 f"error: --save-dir {SPEC_FILE}: "),
}


@pytest.mark.parametrize("args,expected", FIRST_HOUR.values(), ids=FIRST_HOUR.keys())
def test_first_hour_mistakes_cost_one_line_and_write_nothing(args, expected, tmp_path, monkeypatch):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    work = tmp_path / "work"
    work.mkdir()
    preset("sch1", 12, 3).save(work / SPEC_FILE)
    monkeypatch.chdir(work)
    before = sorted(p.name for p in work.iterdir())
    line = one_line_error(args)
    assert line.startswith(expected), line
    assert "Traceback" not in line
    assert sorted(p.name for p in work.iterdir()) == before, "nothing was written"
    assert not os.path.exists("/nonexistent"), "no folder made for a missing --output folder"


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "maitsearch", "run", "--config", "quick", "--results", str(tmp_path),
               "--name", "interrupted"]
    # A shell without job control starts background commands with SIGINT ignored, and a child
    # inherits that: give the run the terminal's default, as a user's Ctrl-C finds it.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (tmp_path / "interrupted" / "trials" / "0.yaml").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (stdout[-2000:], stderr[-2000:])
    assert stderr.strip().splitlines()[-1] == ("interrupted: every finished trial is saved; run the same command "
                                              "again to go on")
    assert "Traceback" not in stderr


@pytest.mark.parametrize("command, stopped_in, kept", [
    (["train", "--spec", "sch2", "--out", "o"], "maitsearch.training.train",
     ": every finished epoch is in the --out folder's checkpoint.pt; run the same command with --resume to go on"),
    (["spec", "show", "sch2", "-L", "2", "-H", "3"], "maitsearch.cli.render.spec_summary", ""),
])
def test_an_interrupted_command_says_what_it_kept_in_its_own_terms(command, stopped_in, kept, tmp_path,
                                                                     monkeypatch):
    """A search keeps its trials, a training its epochs (and goes on only with --resume); a command
    that keeps nothing says only that it stopped."""
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stopped_in, stop)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, command)
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == f"interrupted{kept}"


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``, from /proc (field 4 of /proc/N/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_sigterm_stops_the_search_and_its_workers_and_exits_143(tmp_path):
    """As ``kill``, ``timeout`` or a scheduler sends it, to the search's own process only: its
    training workers (outside any terminal's process group here) stop with it, not when their
    seeds end."""
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "maitsearch", "run", "--config", "quick", "--results", str(tmp_path),
               "--name", "terminated", "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.time() + 120
    while len(_children(process.pid)) < 3 and time.time() < deadline:  # two workers and their manager
        time.sleep(0.2)
    workers = _children(process.pid)
    assert len(workers) >= 3, workers
    time.sleep(2)  # the workers are training now
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, (stdout[-2000:], stderr[-2000:])
    assert stderr.strip().splitlines()[-1] == ("interrupted: every finished trial is saved; run the same command "
                                              "again to go on")
    deadline = time.time() + 10
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the search"
