"""`maitsearch confirm`: a finished run's best placements, baselines and answer on fresh seeds."""

import dataclasses
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.config import SearchConfig
from maitsearch.errors import ConfigError
from maitsearch.runs import RunStore, TrialRecord
from maitsearch.search.confirm import confirmation_config
from maitsearch.spec import MaskSpec, preset


def _record(number, counts, top1, *, seeds=3, **changes):
    spec = MaskSpec.from_counts(counts, 3) if isinstance(counts, list) else preset(counts, 4, 3)
    record = TrialRecord(number, "assign", spec, seeds=list(range(seeds)), val_top1=[top1] * seeds,
                         test_top1=[top1] * seeds, extra={"key": spec.key()})
    return dataclasses.replace(record, **changes)


@pytest.fixture
def finished_run(tmp_path):
    """A hand-made 4x3 run on seeds 0-2 whose trials cover every case a confirmation must sort."""
    store = RunStore(tmp_path, "searched")
    searched = SearchConfig(strategy="optuna", layers=4, heads=3, seeds=3, baselines=["none", "sch1"])
    searched = searched.replace(optuna=dataclasses.replace(searched.optuna, storage="journal:study.journal"))
    store.write_config(searched.to_dict())
    soft = MaskSpec.from_counts([1, 0, 0, 0], 3)
    soft = dataclasses.replace(soft, soft=((0.0, 0.4, 1.0),) + ((1.0,) * 3,) * 3)
    records = [
        _record(0, "none", 0.90), _record(1, "sch1", 0.91),
        _record(2, [3, 3, 0, 0], 0.95), _record(3, [2, 0, 0, 0], 0.93),
        _record(4, [3, 0, 0, 0], 0.99, state="pruned"),
        _record(5, [3, 3, 0, 0], 0.95, duplicate_of=2),
        _record(6, [1, 0, 0, 0], 0.99, spec=soft),  # a soft training, not a placement
        _record(7, [3, 3, 3, 0], 0.99, seeds=1),  # not measured with all the run's seeds
        _record(8, [3, 3, 3, 3], 0.99, extra={"key": "x|epochs=10"}),  # a shortened budget
        _record(9, [3, 2, 1, 0], 0.92), _record(10, [1, 1, 1, 0], 0.80),
        _record(11, [1, 1, 1, 1], 0.99),  # sch1 again, more accurate by luck: still one entry
    ]
    for record in records:
        store.write_trial(record, "als", "digits")
    store.write_answer(records[10].to_spec("searched", "als", "digits"))
    return store


def test_a_confirmation_takes_the_most_accurate_placements_and_the_answer_to_the_next_seeds(finished_run):
    config = confirmation_config(finished_run, top=2)
    trial = lambda number: str(finished_run.trial_path(number))  # noqa: E731
    # baselines first, then the 2 best other placements (2, 3), then the answer (10), ranked below them
    assert config.baselines == ["none", "sch1", trial(2), trial(3), trial(10)]
    assert (config.strategy, config.seeds, config.proxy.seed) == ("presets", 3, 3)
    assert config.optuna.storage is None, "the presets run would not use the study, nor print where it is"
    assert "seeds 3-5, which it never trained" in config.description
    assert confirmation_config(finished_run, top=5).baselines[2:] == [trial(2), trial(3), trial(9), trial(10)]
    assert confirmation_config(finished_run, top=1, seeds=5).seeds == 5


def test_a_run_of_one_seed_trials_is_confirmed_on_three(finished_run):
    data = finished_run.read_config()
    finished_run.write_config({**data, "seeds": 1})
    config = confirmation_config(finished_run, top=1)
    assert (config.seeds, config.proxy.seed) == (3, 1)
    assert config.baselines == ["none", "sch1", str(finished_run.trial_path(7))], "its one-seed trials count now"


def test_runs_confirmed_from_one_first_seed_share_fresh_seeds_and_extra_placements(finished_run):
    """How benchmarks/strategies.py confirms every strategy's answer beside none, Sch.1, Sch.2 and
    all on one set of fresh seeds: the same seeds, so the placements pair and train once."""
    config = confirmation_config(finished_run, top=1, seeds=4, first_seed=100, also=("sch2", "all", "sch1"))
    assert config.baselines == ["none", "sch1", "sch2", "all", str(finished_run.trial_path(2)),
                                str(finished_run.trial_path(10))]
    assert (config.seeds, config.proxy.seed) == (4, 100) and "seeds 100-103" in config.description
    with pytest.raises(ConfigError, match="--first-seed 2: seeds 2-5 overlap the run's own 0-2"):
        confirmation_config(finished_run, seeds=4, first_seed=2)


def test_the_strategies_benchmark_adds_a_runs_wall_time_over_the_sessions_it_ran_in(tmp_path, monkeypatch):
    """benchmarks/strategies.py takes hours, so it resumes: 5 s held from an interrupted session
    plus this one's command, marked done; a failed command is one line and stays not done."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "strategies.py"
    monkeypatch.syspath_prepend(str(path.parent))  # as `python benchmarks/strategies.py` runs it
    module_spec = importlib.util.spec_from_file_location("strategies_benchmark", path)
    strategies = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(strategies)
    walls = tmp_path / strategies.WALLS
    strategies.record_wall(walls, "run", 5.0, done=False)
    wall = strategies.maitsearch(["--help"], tmp_path / "run.log", walls, "run")
    assert wall > 5.0 and strategies.read_walls(walls)["run"] == {"wall_s": round(wall, 1), "done": True}
    assert "Usage" in (tmp_path / "run.log").read_text()
    with pytest.raises(SystemExit, match=r"maitsearch run --config nowhere failed \(exit 2\); see "):
        strategies.maitsearch(["run", "--config", "nowhere"], tmp_path / "bad.log", walls, "bad")
    assert strategies.read_walls(walls)["bad"]["done"] is False


def test_the_strategies_benchmark_past_its_session_minutes_starts_no_run(tmp_path):
    """--no-new-run-after ends a session between runs, so no run is cut off mid-seed and charged
    for it; nothing is trained or timed."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "strategies.py"
    done = subprocess.run([sys.executable, str(script), "--config", "quick", "--no-new-run-after", "0",
                           "--results", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == ("stopping before supernet-seed0: past --no-new-run-after 0 min; "
                                                     "run the same command again to go on")
    assert not (tmp_path / "runs" / "supernet-seed0").exists() and not (tmp_path / "runs" / "walls.json").exists()


def test_confirming_nothing_or_no_run_is_a_config_error(finished_run, tmp_path):
    with pytest.raises(ConfigError, match="--top 0: confirm at least one placement"):
        confirmation_config(finished_run, top=0)
    with pytest.raises(ConfigError, match="confirm missing: no run folder at "):
        confirmation_config(RunStore(tmp_path, "missing"))
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "transfer.yaml").write_text("kendall_tau: 0.5\n")
    with pytest.raises(ConfigError, match=r"confirm study: a transfer study, not a run; confirm one of its two runs: "
                                          r"`maitsearch confirm proxy --results .*study` \(or target\)"):
        confirmation_config(RunStore(tmp_path, "study"))


@pytest.mark.slow
def test_confirm_retrains_a_real_run_on_fresh_seeds_and_resumes(quick_results, tmp_path):
    """The quick ALS run (seed 0) confirmed on seeds 1-2: every trial there pairs on those seeds,
    a searched placement is named after its trial, and best.yaml is the most accurate of them."""
    root, summaries = quick_results
    shutil.copytree(root / "quick-als", tmp_path / "quick-als")
    source = {r.spec.key(): r for r in summaries["als"].records if r.duplicate_of is None}
    args = ["confirm", "quick-als", "--top", "1", "--seeds", "2", "--results", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    store = RunStore(tmp_path, "quick-als-confirm")
    records, problems = store.load_trials()
    assert not problems and len(records) >= 3
    assert all(r.seeds == [1, 2] for r in records)
    assert [r.step for r in records[:2]] == ["none", "sch1"]
    searched = records[2:]
    assert searched and all(r.step.startswith("quick-als/trial-") for r in searched)
    for record in searched:
        number = int(record.step.rsplit("-", 1)[1])
        assert source[record.spec.key()].number == number, "the trial it names holds that placement"
    best = yaml.safe_load((store.path / "best.yaml").read_text())
    assert best["meta"]["top1"] == pytest.approx(max(r.top1 for r in records))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(0 trained" in again.output
