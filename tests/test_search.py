"""Strategies and the runner: one contract test for all, then each strategy's own rules (Optuna's and
its shared studies in test_optuna_search.py)."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from maitsearch.config import AlsSettings, SearchConfig
from maitsearch.errors import ConfigError
from maitsearch.events import StudyWaiting, WorkerEpoch
from maitsearch.runs import RunStore, TrialRecord
from maitsearch.search.als_guided import AlsStrategy
from maitsearch.search.calibrate import analyse
from maitsearch.search.launch import run_search
from maitsearch.search.soft_masks import derive
from maitsearch.spec import MaskSpec, load_spec, preset

from .test_claims import STALL


@pytest.mark.parametrize("strategy", ["als", "optuna", "soft", "supernet", "presets"])
def test_strategy_contract(strategy, quick_results):
    root, summaries = quick_results
    summary = summaries[strategy]
    store = RunStore(root, f"quick-{strategy}")
    assert summary.records, "every strategy trains something"
    for record in summary.records:  # each trial's YAML is a valid spec that loads back equal
        loaded = load_spec(store.trial_path(record.number))
        assert loaded == record.to_spec(store.name, strategy, "digits")
        assert TrialRecord.from_spec(loaded).val_top1 == pytest.approx(record.val_top1, abs=1e-6)
    table = pd.read_csv(store.path / "trials.csv", dtype={"placement": str})
    assert list(table["number"]) == [r.number for r in summary.records]
    assert list(table["state"]) == [r.state for r in summary.records]
    assert list(table["placement"]) == [r.spec.compact() for r in summary.records]
    best = load_spec(store.path / "best.yaml")
    assert summary.best is not None and best.masks == summary.best.spec.masks
    assert (store.path / "report.md").read_text().startswith(f"# {store.name}")
    assert (store.path / "search.yaml").exists()


def test_trials_csv_rebuilt_from_the_trial_files_is_byte_identical(tmp_path):
    """A resumed run rebuilds trials.csv from the YAMLs; it must write what the live run wrote,
    also for a trial whose seeds all came from the cache (seconds 0, an int in the live record)."""
    store = RunStore(tmp_path, "rebuild")
    records = [TrialRecord(number=0, step="baseline", spec=preset("none", 2, 2), seeds=[0, 1],
                           val_top1=[0.5, 0.625], test_top1=[0.5, 0.5], loss=[1.25], seconds=0, cached=2),
               TrialRecord(number=1, step="init", spec=preset("sch1", 2, 2), seeds=[0, 1],
                           val_top1=[0.75, 0.7], test_top1=[0.6, 0.65], loss=[0.9], seconds=12.34)]
    for record in records:
        store.write_trial(record, "als", "digits")
    live = store.write_trials_csv(records).read_bytes()
    reloaded, problems = store.load_trials()
    assert not problems
    assert store.write_trials_csv(reloaded).read_bytes() == live


def fake_record(number, step, spec, als, state="complete"):
    """A trained trial whose normalized ALS is ``als`` (u = 0 makes raw and normalized equal)."""
    return TrialRecord(number=number, step=step, spec=spec, state=state, seeds=[0], val_top1=[0.5],
                       test_top1=[0.5], als=als, als_uniform=0.0)


ABSOLUTE = AlsSettings(thresholds="absolute", als_high=0.8, als_low=0.2)


def drive_als(config, als_init, als_assign=None):
    """Run the ALS strategy with injected ALS values instead of training."""
    strategy = AlsStrategy(config)
    first = strategy.ask()
    assert [p.step for p in first] == ["baseline", "baseline", "init"]
    init = first[-1]
    assert init.spec.counts() == (1,) * config.layers, "init masks head 0 in every layer"
    strategy.tell(init, fake_record(2, "init", init.spec, als_init))
    (assign,) = strategy.ask()
    strategy.tell(assign, fake_record(3, "assign", assign.spec, als_assign or als_init))
    (calibrate,) = strategy.ask()
    strategy.tell(calibrate, fake_record(4, "calibrate", calibrate.spec, als_assign or als_init))
    assert strategy.ask() == []
    return strategy, assign.spec, calibrate.spec


def test_als_follows_the_three_rules():
    config = SearchConfig(layers=4, heads=3, als=ABSOLUTE)
    als_init = [[0.95, 0.3, 0.2], [0.5, 0.3, 0.3], [0.05, 0.3, 0.3], [0.85, 0.4, 0.4]]
    als_assign = [[0.95, 0.6, 0.1], [0.5, 0.3, 0.3], [0.0, 0.0, 0.0], [0.9, 0.05, 0.9]]
    strategy, assign, calibrate = drive_als(config, als_init, als_assign)
    assert assign.masks == ((0, 1, 2), (0,), (), (0, 1, 2))  # promote >= 0.8, keep ~0.5, remove <= 0.2
    assert calibrate.masks == ((0, 1), (0,), (), (0, 2))  # promoted layers lose heads with ALS <= 0.2
    assert strategy.answer().step == "calibrate"
    assert any("promoted to all heads masked: layers 0, 3" in note for note in strategy.notes())


def test_rank_thresholds_read_the_levels_off_step_one():
    """Six layers, promote a third and remove a sixth: the two most local layers get every head,
    the least local loses its mask, whatever the absolute scale (here all below 0.3)."""
    config = SearchConfig(layers=6, heads=3, als=AlsSettings(thresholds="rank", promote=1 / 3, remove=1 / 6))
    head0 = [0.12, 0.25, 0.02, 0.08, 0.05, 0.30]
    als_init = [[a, 0.0, 0.0] for a in head0]
    als_assign = [[0.2, 0.03, 0.01], [0.2, 0.2, 0.2], [0.0] * 3, [0.1] * 3, [0.1] * 3, [0.2, 0.2, 0.01]]
    strategy, assign, calibrate = drive_als(config, als_init, als_assign)
    assert strategy.levels == (0.25, 0.02)
    assert assign.counts() == (1, 3, 0, 1, 1, 3)
    assert calibrate.masks[5] == (0, 1) and calibrate.masks[1] == (0, 1, 2)  # l5h2 at 0.01 <= 0.02 loses its mask
    assert any("the most local 33%" in note for note in strategy.notes())


def test_als_notes_name_the_layers_within_a_standard_error_of_a_cut_off():
    """Six layers as above, head 0 measured on 3 seeds. Rank cut-offs sit halfway between the
    last layer in and the first out: promotion (0.25 + 0.12) / 2 = 0.185, removal (0.02 + 0.05)
    / 2 = 0.035. Layer 1 (seeds 0.10, 0.25, 0.40: standard error 0.15 / sqrt 3 = 0.087) is 0.065
    from its cut-off, layer 4 (0.00, 0.05, 0.10: 0.029) is 0.015 from its; every other layer has
    no spread. With absolute levels the cut-offs are the levels: only layer 1 (0.25 from 0.2 by
    less than 0.087) is close."""
    head0_seeds = [[0.12] * 3, [0.10, 0.25, 0.40], [0.02] * 3, [0.08] * 3, [0.00, 0.05, 0.10], [0.30] * 3]
    als_seeds = [[[layer[seed], 0.0, 0.0] for layer in head0_seeds] for seed in range(3)]
    mean = [[sum(layer) / 3, 0.0, 0.0] for layer in head0_seeds]
    # the record's own means, which set the levels, can differ from the seeds' in the last bits
    mean[1][0] += 1e-12
    mean[2][0] -= 1e-12

    def notes(als_settings, seeds):
        strategy = AlsStrategy(SearchConfig(layers=6, heads=3, als=als_settings))
        init = strategy.ask()[-1]
        strategy.tell(init, TrialRecord(number=2, step="init", spec=init.spec, seeds=list(range(len(seeds))),
                                        val_top1=[0.5] * len(seeds), test_top1=[0.5] * len(seeds), als=mean,
                                        als_seeds=seeds, als_uniform=0.0))
        strategy.ask()
        return [note for note in strategy.notes() if note.startswith("close calls")]

    rank = AlsSettings(thresholds="rank", promote=1 / 3, remove=1 / 6)
    assert notes(rank, als_seeds) == [
        "close calls in step 2 (head-0 ALS, mean of 3 seeds, within one standard error of a cut-off; other seeds, "
        "or another machine, may decide them the other way): promotion at +0.185: layers 1; removal at +0.035: "
        "layers 4."]
    assert notes(AlsSettings(thresholds="absolute", als_high=0.2, als_low=0.0), als_seeds)[0].endswith(
        "promotion at +0.200: layers 1.")
    assert notes(rank, als_seeds[:1]) == [], "one seed has no standard error to judge by"


@pytest.mark.parametrize("fractions", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)])
def test_rank_extremes(fractions):
    config = SearchConfig(layers=4, heads=3, als=AlsSettings(thresholds="rank", promote=fractions[0],
                                                             remove=fractions[1]))
    strategy, assign, _ = drive_als(config, [[0.4, 0, 0], [0.3, 0, 0], [0.2, 0, 0], [0.1, 0, 0]])
    expected = {(0.0, 0.0): (1, 1, 1, 1), (1.0, 0.0): (3, 3, 3, 3), (0.0, 1.0): (0, 0, 0, 0)}[fractions]
    assert assign.counts() == expected


@pytest.mark.parametrize("settings,message", [
    (AlsSettings(thresholds="median"), "als.thresholds: unknown 'median'"),
    (AlsSettings(promote=0.7, remove=0.5), "together at most 1"),
    (AlsSettings(thresholds="absolute", als_high=0.1, als_low=0.2), "must be below"),
])
def test_bad_als_settings_are_refused_before_training(settings, message):
    with pytest.raises(ConfigError, match=message):
        AlsStrategy(SearchConfig(layers=4, heads=3, als=settings))


def test_als_edge_cases_are_reported_not_crashed_on():
    config = SearchConfig(layers=3, heads=3, als=ABSOLUTE)
    _, assign, calibrate = drive_als(config, [[0.5, 0.1, 0.1]] * 3)
    assert assign.counts() == (1, 1, 1) and calibrate == assign  # nothing promoted: step 3 repeats step 2
    strategy, assign, calibrate = drive_als(config, [[0.1, 0.1, 0.1]] * 3)
    assert assign.num_masked == 0 and calibrate.num_masked == 0
    assert any("removed every mask" in note for note in strategy.notes())


def test_calibration_times_a_trial_by_the_seeds_it_trained():
    # A 5-seed calibration resumed from a 3-seed one serves 3 seeds from the cache: 300 s over
    # the 2 trained seeds is 150 s a trial, not 60.
    config = SearchConfig(layers=2, heads=3, seeds=5)
    records = [TrialRecord(number, f"{name}@1x", preset(name, 2, 3), seeds=[0, 1, 2, 3, 4],
                           val_top1=[0.9, 0.91, 0.92, 0.9, 0.91], seconds=300.0, cached=3)
               for number, name in enumerate(("none", "all"))]
    records.append(TrialRecord(2, "sch1@1x", preset("sch1", 2, 3), seeds=[0, 1, 2, 3, 4],
                               val_top1=[0.9] * 5, seconds=0.0, cached=5))  # all cached: not a timing
    assert analyse(records, config, (1,))["seconds_per_trial"] == pytest.approx(150.0)


@pytest.mark.slow
def test_best_is_the_most_accurate_trial_and_the_answer_is_reported_beside_it(quick_config, digits, tmp_path):
    """The ALS strategy's answer is its last step; best.yaml is whichever trial measured best.
    When they differ, the answer goes to answer.yaml and the report compares both."""
    config = quick_config.replace(proxy=quick_config.proxy.replace(epochs=1), baselines=["none", "sch1", "all"],
                                  als=AlsSettings(thresholds="rank", promote=0.0, remove=1.0))
    summary = run_search(config, results_root=tmp_path, name="a", data=digits)
    assert summary.answer.step in ("calibrate", "assign") and summary.answer.spec.num_masked == 0
    complete = [r for r in summary.records if r.state == "complete"]
    assert summary.best.top1 == max(r.top1 for r in complete)
    answer_file = tmp_path / "a" / "answer.yaml"
    assert answer_file.exists() == (summary.answer.spec.key() != summary.best.spec.key())
    report = (tmp_path / "a" / "report.md").read_text()
    assert "the strategy's own answer is trial" in report and "vs Sch.1" in report


def test_als_stops_when_init_fails():
    strategy = AlsStrategy(SearchConfig(layers=2, heads=3))
    init = strategy.ask()[-1]
    strategy.tell(init, fake_record(2, "init", init.spec, None, state="nan_loss"))
    assert strategy.ask() == []
    assert any("stopped early" in note for note in strategy.notes())


def test_soft_derivation_follows_thresholds():
    settings = dataclasses.replace(SearchConfig().soft, round=False)
    learned = MaskSpec(layers=2, heads=3, masks=[[], []], soft=[[0.05, 0.5, 0.95], [0.1, 0.9, 0.3]])
    derived = derive(learned, settings)
    assert derived.masks == ((0,), (0,))
    assert derived.soft == ((0.0, 0.5, 1.0), (0.0, 1.0, 0.3))
    rounded = derive(learned, dataclasses.replace(settings, round=True))
    assert rounded.masks == ((0,), (0, 2)) and rounded.soft is None


@pytest.mark.slow
def test_soft_alphas_are_learned(quick_config, digits, tmp_path):
    config = quick_config.replace(strategy="soft", baselines=[])
    summary = run_search(config, results_root=tmp_path, name="soft", data=digits)
    soft = next(r for r in summary.records if r.step == "soft")
    alphas = [a for row in soft.spec.soft for a in row]
    assert all(0 < a < 1 for a in alphas)
    assert max(abs(a - 0.5) for a in alphas) > 1e-3, "alphas moved from their init"
    derived = next(r for r in summary.records if r.step == "derived")
    expected = derive(soft.spec, config.soft)
    assert derived.spec.masks == expected.masks  # the hard part; its soft heads learn on in training
    assert [[a == 1.0 for a in row] for row in derived.spec.alphas()] == [[a == 1.0 for a in row] for row in expected.alphas()]


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_repeating_trials(tmp_path):
    args = ["run", "--config", "quick", "--epochs", "1", "--results", str(tmp_path), "--name", "killed"]
    trials, mark = tmp_path / "killed" / "trials", tmp_path / "training-trial-1"
    # tests/stall.py stops the second training (trial 1) at its start until the kill: a known
    # point, however busy the machine is
    victim = subprocess.Popen([sys.executable, str(STALL), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "STALL_AT": "2", "STALL_MARK": str(mark)})
    deadline = time.time() + 300
    while not mark.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert mark.exists(), "trial 1 started training"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivors = {p.name: p.read_bytes() for p in trials.glob("*.yaml")}
    assert list(survivors) == ["0.yaml"]

    # the victim's claim on trial 1's seed is silent from the kill on: a short grace breaks it soon
    result = subprocess.run([sys.executable, "-m", "maitsearch", *args], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MAITSEARCH_CLAIM_GRACE": "2"})
    assert result.returncode == 0, result.stderr
    assert "resuming with 1 finished trial(s)" in result.stdout
    assert f"by pid {victim.pid} on" in result.stdout, "the dead worker's claim was broken"
    for name, content in survivors.items():
        assert (trials / name).read_bytes() == content, f"{name} was rewritten"
    numbers = sorted(int(p.stem) for p in trials.glob("*.yaml"))
    assert numbers == list(range(len(numbers))) and len(numbers) == 5
    assert not list((tmp_path / "killed").rglob("*.tmp"))


def test_a_resume_gives_interrupted_trials_back_their_numbers(quick_config, digits, tmp_path):
    """What the chaos test met: a kill while trial 0 trained, after trial 1 had finished. The
    resumed run numbers the placements as the run that never stopped did."""
    import shutil

    config = quick_config.replace(strategy="presets", baselines=["none", "sch1", "sch2"], jobs=1)
    whole = run_search(config, results_root=tmp_path / "whole", name="run", data=digits)
    numbered = {r.number: r.spec.compact() for r in whole.records}
    assert sorted(numbered) == [0, 1, 2]

    shutil.copytree(tmp_path / "whole" / "run", tmp_path / "killed" / "run")
    for number in (0, 2):  # the kill left only trial 1's file
        (tmp_path / "killed" / "run" / "trials" / f"{number}.yaml").unlink()
    resumed = run_search(config, results_root=tmp_path / "killed", name="run", data=digits)
    assert resumed.resumed == 1
    assert {r.number: r.spec.compact() for r in resumed.records} == numbered


def test_presets_strategy_trains_named_placements_with_their_own_windows():
    from maitsearch.search.presets import PresetsStrategy

    config = SearchConfig(strategy="presets", layers=12, heads=3, baselines=["none", "sch1@3x3", "sch1@3x5", "sch1@5x5"])
    proposals = PresetsStrategy(config).ask()
    assert [p.spec.window for p in proposals] == [(3, 3), (3, 3), (3, 5), (5, 5)]
    assert [p.step for p in proposals] == ["none", "sch1@3x3", "sch1@3x5", "sch1@5x5"]
    assert len({p.key() for p in proposals}) == 4, "windows make different experiments"
    with pytest.raises(ValueError, match="expected a window such as sch1@3x5"):
        PresetsStrategy(config.replace(baselines=["sch1@wide"])).ask()


def test_presets_strategy_retrains_a_spec_file_with_the_runs_seeds(tmp_path):
    from maitsearch.search.presets import PresetsStrategy
    from maitsearch.spec import MaskSpec

    # the other run's record of the placement, which must not become this run's
    provenance = {"run": "other-run", "trial": 7, "seeds": [0], "top1": 0.9, "duplicate_of": 4, "cached_seeds": 1}
    found = MaskSpec.from_counts([2, 0, 1, 3], 3, window=(3, 5)).with_meta(**provenance).save(
        tmp_path / "other-run" / "best.yaml")
    config = SearchConfig(strategy="presets", layers=4, heads=3, baselines=["none", str(found)])
    none, from_file = PresetsStrategy(config).ask()
    assert from_file.step == "other-run/best" and from_file.spec.window == (3, 5)
    assert from_file.spec.meta == {"preset": "other-run/best"}
    assert from_file.spec.masks == ((0, 1), (), (0,), (0, 1, 2)) and from_file.key() != none.key()
    with pytest.raises(ValueError, match=r"best.yaml: the spec is 4 layers x 3 heads, the run 6 x 3"):
        PresetsStrategy(config.replace(layers=6)).ask()


def test_presets_strategy_trains_compact_text_as_tables_print_it():
    from maitsearch.search.presets import PresetsStrategy

    # a hand-worked placement: 0x3 = heads 0 and 1, 0x4 = head 2, 0x0 = none, 0x7 = all three
    config = SearchConfig(strategy="presets", layers=4, heads=3, window=[3, 5], semantics="local",
                          baselines=["3407", "3407@5x5:paper", "sch2"])
    as_written, own_window, sch2 = PresetsStrategy(config).ask()
    assert as_written.spec.masks == ((0, 1), (2,), (), (0, 1, 2)) and as_written.step == "3407"
    assert (as_written.spec.window, as_written.spec.semantics) == ((3, 5), "local"), "the run's, as for a preset"
    assert (own_window.spec.window, own_window.spec.semantics) == ((5, 5), "paper")
    assert sch2.spec.masks == ((0, 1), (0,), (0,), ()) and sch2.key() != as_written.key()
    with pytest.raises(ConfigError, match=r"^placement 340: head bits for 3 layers, the run has 4$"):
        PresetsStrategy(config.replace(baselines=["340"])).ask()
    with pytest.raises(ConfigError, match=r"^placement sch: not a preset \(none, sch1, sch2, sch3, all, random\), "
                                          r"a spec file \(NAME.yaml\) or compact head bits \(sch1 is 1111\)$"):
        PresetsStrategy(config.replace(baselines=["sch"])).ask()


@pytest.mark.slow
def test_parallel_jobs_give_the_serial_results(quick_config, digits, tmp_path):
    """Two worker processes, one thread each: the same per-seed numbers as training in-process
    (each unit is deterministic for its seed), with the workers' epochs reaching the live view."""
    config = quick_config.replace(strategy="presets", baselines=["none", "sch1"], seeds=2,
                                  proxy=quick_config.proxy.replace(epochs=1))
    serial = run_search(config.replace(jobs=1), results_root=tmp_path, name="serial", data=digits)
    events = []
    parallel = run_search(config.replace(jobs=2, cache=str(tmp_path / "own-cache")), results_root=tmp_path,
                          name="parallel", on_event=events.append)  # its own cache: trained, not looked up
    flat = lambda summary: [v for r in summary.records for v in r.val_top1]  # noqa: E731
    assert flat(parallel) == pytest.approx(flat(serial), abs=1e-9)
    assert [r.spec.compact() for r in parallel.records] == [r.spec.compact() for r in serial.records]
    assert {(e.number, e.seed) for e in events if isinstance(e, WorkerEpoch)} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_run_view_says_how_many_workers_are_helpers():
    """A helper's trials reach the run folder, not this process's trial lines: the view says so."""
    from rich.console import Console

    from maitsearch.cli.progress import RunView, make_progress
    from maitsearch.events import RunStarted

    lines = {}
    for helpers in (0, 1):
        console = Console(record=True, width=300)
        RunView(console, make_progress(console))(RunStarted(name="r", path="p", strategy="optuna", resumed=0,
                                                            workers=1 + helpers, helpers=helpers, cores=2))
        lines[helpers] = console.export_text().splitlines()[1]
    assert lines[0] == "training in 1 process(es) x 1 thread(s); 0.0 of 2 cores busy with other work"
    assert lines[1] == ("training in 2 process(es) x 1 thread(s) (1 of them helper worker(s)); 0.0 of 2 cores "
                        "busy with other work")


def test_run_view_says_what_a_worker_with_nothing_left_to_train_waits_for():
    from rich.console import Console

    from maitsearch.cli.progress import RunView, make_progress
    from maitsearch.events import HelpersWaiting

    console = Console(record=True, width=300)
    view = RunView(console, make_progress(console))
    view(StudyWaiting(running=2, seconds=75))
    view(HelpersWaiting(helpers=3))
    assert console.export_text().splitlines() == [
        "the study is full but 2 trial(s) of other workers still run: waiting up to 75 s to retry any whose "
        "worker died",
        "waiting for 3 helper worker(s) to finish their last trials"]


def test_run_view_keeps_trial_lines_in_columns_after_a_long_step_name():
    """A placement retrained from a spec file is its own step (``shift-copy-map-als/answer``):
    the lines after it keep the placement column where that line put it."""
    from rich.console import Console

    from maitsearch.cli.progress import RunView, make_progress
    from maitsearch.events import TrialEnded

    console = Console(record=True, width=300)
    view = RunView(console, make_progress(console))
    for number, step, name in ((0, "none", "none"), (1, "some-run/answer", "sch1"), (2, "all", "all")):
        view(TrialEnded(TrialRecord(number, step, preset(name, 2, 2), seeds=[0], val_top1=[0.5], test_top1=[0.5])))
    lines = [line for line in console.export_text().splitlines() if line.startswith("trial")]
    columns = [line.index(preset(name, 2, 2).label()) for line, name in zip(lines, ("none", "sch1", "all"))]
    assert columns[1] == columns[2] == len("trial   1 some-run/answer ")
    assert columns[0] == len("trial   0 none       ")


def test_training_bars_end_full_and_speak_in_percent():
    """After the last epoch the step bar stays full (not reset to 0/N), and the epoch bar's
    accuracy reads in percent, as the line printed after it does."""
    from rich.console import Console

    from maitsearch.cli.progress import TrainingBars, make_progress
    from maitsearch.events import EpochDone, StepDone, TrainingStarted

    with make_progress(Console(record=True, width=200)) as progress:
        bars = TrainingBars(progress)
        bars(TrainingStarted(epochs=2, steps_per_epoch=3))
        completed = []
        for epoch in range(2):
            for step in range(3):
                bars(StepDone(epoch=epoch, step=step, loss=1.0))
                completed.append(progress.tasks[1].completed)
            bars(EpochDone(epoch=epoch, metrics={"val_top1": 0.7354}))
        epochs, steps = progress.tasks
    assert completed == [1, 2, 3, 1, 2, 3], "each epoch's steps count from 1"
    assert (epochs.completed, steps.completed, steps.total) == (2, 3, 3)
    assert epochs.fields["status"] == "val top-1 73.5%"


@pytest.mark.slow
def test_free_cores_sees_a_busy_core_at_once():
    """The 1-minute load average lags; the /proc/stat sample must see a spinning process now."""
    import os
    import subprocess
    import sys
    import time

    from maitsearch.search import executors

    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat: the load average stands in")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert executors.busy_cores(window=0.5) >= 0.6
    finally:
        spinner.kill()
        spinner.wait()
