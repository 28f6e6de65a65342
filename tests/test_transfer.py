"""`maitsearch transfer`: rank agreement, regret and verdict on hand-made rankings; the train_copies
data option; a prepared ImageFolder tree; and one real tiny study through the CLI."""

import csv
import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats
import torch
import yaml
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.config import ProxyConfig, load_config
from maitsearch.errors import ConfigError, DataError, SearchError
from maitsearch.runs.transfer_report import analyse_transfer, proxy_identity
from maitsearch.stats import kendall_tau, quantile, seed_bootstrap, spearman_rho

ROOT = Path(__file__).resolve().parent.parent


# ---- rank agreement ---------------------------------------------------------------------------
def test_tau_and_rho_of_a_hand_worked_ranking():
    proxy, target = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]  # one swapped pair of six
    assert kendall_tau(proxy, target) == pytest.approx((5 - 1) / 6)
    assert spearman_rho(proxy, target) == pytest.approx(1 - 6 * 2 / (4 * (16 - 1)))  # sum d^2 = 2
    assert kendall_tau(proxy, proxy[::-1]) == pytest.approx(-1.0) and spearman_rho(proxy, proxy[::-1]) == -1.0


@pytest.mark.parametrize("a, b", [
    ([0.90, 0.92, 0.92, 0.95, 0.91], [0.80, 0.85, 0.83, 0.85, 0.84]),  # ties on each side
    ([0.5, 0.5, 0.7, 0.6], [0.1, 0.2, 0.2, 0.2]),
    ([3.0, 1.0, 2.0, 5.0, 4.0, 6.0, 0.0], [2.0, 1.0, 3.0, 6.0, 4.0, 5.0, 0.0]),
])
def test_tau_b_and_rho_handle_ties_as_scipy_does(a, b):
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)  # tau-b by default
    assert spearman_rho(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)


def test_a_side_whose_means_all_tie_has_no_ranking():
    assert math.isnan(spearman_rho([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]))
    result = analyse_transfer(["a", "b"], {"a": [0.9, 0.8], "b": [0.7, 0.8]}, {"a": [0.5, 0.6], "b": [0.6, 0.5]})
    assert result["kendall_tau"] is None and result["spearman_rho"] is None  # the target's means tie
    assert result["pick_is_best"] and result["regret"] == 0, "a pick tied with the best is the best"
    assert [row["target"]["rank"] for row in result["placements"]] == [1.5, 1.5]


def test_quantile_interpolates_as_numpy_does():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    for q in (0.0, 0.025, 0.5, 0.975, 1.0):
        assert quantile(values, q) == pytest.approx(float(torch.quantile(torch.tensor(values), q)))


def test_the_bootstrap_resamples_seeds_paired_across_placements_and_sides():
    # Each seed lifts every placement alike, on each side: a paired draw never reorders them,
    # while one seed index per placement (or per side) drawn on its own would, half the time.
    proxy = {"a": [0.90, 0.80], "b": [0.91, 0.81], "c": [0.93, 0.83]}
    target = {"a": [0.50, 0.70], "b": [0.52, 0.72], "c": [0.56, 0.76]}
    names = list(proxy)
    a, b = [proxy[n] for n in names], [target[n] for n in names]
    assert seed_bootstrap(a, b, kendall_tau) == (1.0, 1.0)
    # identical sides: the same draw on both gives the same ranking, tau +1 whenever defined
    same = [[0.90, 0.80], [0.85, 0.85]]
    assert seed_bootstrap(same, same, kendall_tau) == (1.0, 1.0)


def test_the_bootstrap_interval_spans_what_the_seeds_allow_and_is_reproducible():
    # Two placements, two seeds: the draws (0,0) and (1,1) rank them one way on the proxy and
    # the other on the target (tau -1), the two mixed draws alike (tau +1); each draw has
    # probability 1/4, above the 2.5% tails, so the 95% interval is exactly [-1, +1].
    a = [[0.8, 0.5], [0.5, 0.7]]  # proxy: each placement's two seeds
    b = [[0.5, 0.8], [0.7, 0.5]]  # target
    draws = {(0, 0): -1.0, (1, 1): -1.0, (0, 1): 1.0, (1, 0): 1.0}
    for (i, j), tau in draws.items():
        means = lambda side: [(v[i] + v[j]) / 2 for v in side]  # noqa: E731
        assert kendall_tau(means(a), means(b)) == tau
    assert seed_bootstrap(a, b, kendall_tau) == (-1.0, 1.0)
    assert seed_bootstrap(a, b, kendall_tau, seed=0) == seed_bootstrap(a, b, kendall_tau, seed=0)
    with pytest.raises(ValueError, match="same number of seeds"):
        seed_bootstrap([[0.1, 0.2]], [[0.1]], kendall_tau)


# ---- regret and verdict -----------------------------------------------------------------------
def _study(regret: float, spread: float = 0.006):
    """Pick a (most accurate on the proxy), best b on the target by ``regret`` on average, its
    per-seed differences regret - spread, regret, regret + spread (std = spread)."""
    proxy = {"a": [0.95, 0.95, 0.95], "b": [0.94, 0.94, 0.94]}
    base = [0.90, 0.91, 0.92]
    target = {"a": base, "b": [v + regret + d for v, d in zip(base, (-spread, 0.0, spread))]}
    return analyse_transfer(["a", "b"], proxy, target)


def test_the_regret_is_the_targets_best_minus_the_picks_accuracy_there():
    result = _study(0.02)
    assert (result["proxy_pick"], result["target_best"], result["pick_is_best"]) == ("a", "b", False)
    assert result["regret"] == pytest.approx(0.02)
    assert result["target_noise"] == pytest.approx(0.006)  # the std of the per-seed differences
    assert result["resolvable_gap"] == pytest.approx(2 * 0.006 / math.sqrt(3))
    assert result["kendall_tau"] == -1.0 and result["spearman_rho"] == -1.0


def test_the_verdict_at_the_noise_boundary():
    gap = 2 * 0.006 / math.sqrt(3)  # 0.693 points: two standard errors of the paired differences
    inside, outside = _study(0.0068), _study(0.0070)
    assert 0.0068 < gap < 0.0070
    assert inside["within_noise"] and not outside["within_noise"]
    assert inside["verdict"] == ("the proxy's pick is within the target's noise of its best (0.68 points below "
                                 "it, resolvable gap 0.69)")
    assert outside["verdict"] == ("the proxy's pick is 0.70 points below the target's best, beyond its noise "
                                  "(resolvable gap 0.69)")
    agreeing = analyse_transfer(["a", "b", "c"], {"a": [0.9, 0.91], "b": [0.8, 0.82], "c": [0.7, 0.7]},
                                {"a": [0.6, 0.62], "b": [0.5, 0.5], "c": [0.4, 0.45]})
    assert agreeing["verdict"] == "the proxy's pick is within the target's noise of its best (it is the target's best)"
    assert agreeing["kendall_tau"] == 1.0 and agreeing["kendall_tau_interval"] == [1.0, 1.0]


@pytest.mark.parametrize("placements, proxy, target, message", [
    (["a", "b"], {"a": [0.9], "b": [0.8]}, {"a": [0.7], "b": [0.6]}, "one seed per placement leaves no seed noise"),
    (["a"], {"a": [0.9, 0.8]}, {"a": [0.7, 0.6]}, "1 placement"),
    (["a", "b"], {"a": [0.9, 0.8], "b": [0.8, 0.7]}, {"a": [0.7, 0.6]}, "no target result for b"),
    (["a", "b"], {"a": [0.9, 0.8], "b": [0.8, 0.7]}, {"a": [0.7, 0.6], "b": [0.7, 0.6, 0.5]}, "same seeds"),
])
def test_bad_studies_are_one_line_config_errors(placements, proxy, target, message):
    with pytest.raises(ConfigError, match=message) as caught:
        analyse_transfer(placements, proxy, target)
    assert "\n" not in str(caught.value)


def test_the_proxy_identity_ignores_strategy_placements_and_seeds_only():
    default = load_config("default")
    other_run = default.replace(strategy="optuna", seeds=5, baselines=["all"], trials=3, jobs=2,
                                proxy=default.proxy.replace(seed=8))
    assert proxy_identity(other_run) == proxy_identity(default)
    assert proxy_identity(default.replace(proxy=default.proxy.replace(width=96))) != proxy_identity(default)
    assert proxy_identity(default.replace(layers=12)) != proxy_identity(default)


# ---- the train_copies option ------------------------------------------------------------------
def test_train_copies_grow_the_training_split_and_leave_validation_and_test_alone():
    from maitsearch.data import load_data

    one, three = (load_data("digits-shift", image_size=24, train_copies=k) for k in (1, 3))
    assert three.size("train") == 3 * one.size("train") == 3 * 539
    assert torch.equal(three.splits["train"][1], one.splits["train"][1].repeat(3))
    assert torch.equal(three.splits["train"][0][:539], one.splits["train"][0]), "the task's own images come first"
    assert not torch.equal(three.splits["train"][0][539:1078], one.splits["train"][0]), "new positions"
    for split in ("val", "test"):
        assert torch.equal(three.splits[split][0], one.splits[split][0])
        assert torch.equal(three.splits[split][1], one.splits[split][1])
    assert (three.mean, three.std) == (one.mean, one.std), "the same normalisation: val/test inputs identical"
    two = load_data("digits-shift", image_size=24, train_copies=2)
    assert torch.equal(three.splits["train"][0][:2 * 539], two.splits["train"][0]), "a larger k extends a smaller"


def test_train_copies_is_neutral_at_one_and_refused_where_it_cannot_apply():
    from maitsearch.data import load_data
    from maitsearch.runs.cache import cache_key
    from maitsearch.search.launch import config_digest
    from maitsearch.spec import preset

    spec = preset("sch1", 24, 3)
    assert "train_copies" not in cache_key(spec, ProxyConfig(), threads=1)["proxy"], "existing entries keep their keys"
    assert cache_key(spec, ProxyConfig(train_copies=2), threads=1)["proxy"]["train_copies"] == 2
    default = load_config("default")
    assert config_digest(default) == "2bd518", "the digest (and default run name) from before the option existed"
    assert config_digest(default.replace(proxy=default.proxy.replace(train_copies=2))) != "2bd518"
    with pytest.raises(DataError, match="digits-mirror cannot grow its training split"):
        load_data("digits-mirror", train_copies=2)
    with pytest.raises(DataError, match="expected a whole number of at least 1"):
        load_data("digits-shift", train_copies=0)


# ---- a real-digit tree made by the study's script ---------------------------------------------
def _fake_package(folder: Path, per_class: int = 12) -> Path:
    """The npm package's layout with made-up digits: class c's k-th digit is a square of ink c*20+k."""
    digits = folder / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    for label in range(10):
        data = []
        for k in range(per_class):
            image = [[0.0] * 28 for _ in range(28)]
            for row in range(8, 20):
                image[row][8:20] = [(label * 20 + k + 1) / 255] * 12
            data += [v for row in image for v in row]
        (digits / f"{label}.json").write_text(json.dumps({"data": data}))
    return folder / "package"


def _prepare(package: Path, out: Path, train: int) -> None:
    script = ROOT / "results" / "transfer-mnist" / "prepare_mnist.py"
    subprocess.run([sys.executable, str(script), str(package), str(out), "--canvas", "32", "--train", str(train),
                    "--val", "20", "--test", "30"], check=True, capture_output=True)


def test_the_mnist_script_writes_a_tree_the_folder_loader_reads_without_flips(tmp_path):
    from maitsearch.data import load_data

    package = _fake_package(tmp_path / "npm")
    _prepare(package, tmp_path / "small", train=30)
    _prepare(package, tmp_path / "large", train=60)
    small, large = (load_data(str(tmp_path / name), image_size=32) for name in ("small", "large"))
    assert {s: large.size(s) for s in ("train", "val", "test")} == {"train": 60, "val": 20, "test": 30}
    assert small.size("train") == 30 and not large.flip, "maitsearch.yaml says flip: false"
    assert torch.bincount(large.splits["train"][1]).tolist() == [6] * 10, "stratified by class"
    files = {name: {p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*.png")}
             for name in ("small", "large")}
    train = lambda name: {p for p in files[name] if p.parts[0] == "train"}  # noqa: E731
    assert train("small") < train("large"), "a smaller training set is part of a larger one"
    assert files["small"] - train("small") == files["large"] - train("large"), "the same val and test digits"
    for split in ("val", "test"):
        assert torch.equal(small.splits[split][0], large.splits[split][0])
    # each image is the digit's square of ink, once, somewhere on the canvas
    image, label = large.splits["val"][0][0], int(large.splits["val"][1][0])
    ink = image[0] > 0
    assert image.shape == (3, 32, 32) and int(ink.sum()) == 144
    assert int(image[0][ink][0]) in range(label * 20 + 1, label * 20 + 13)
    with pytest.raises(subprocess.CalledProcessError):  # never writes over a tree
        _prepare(package, tmp_path / "large", train=60)


def test_a_bad_folder_settings_file_is_one_line(tmp_path):
    from maitsearch.data import load_data

    for split in ("train", "val"):
        (tmp_path / split / "0").mkdir(parents=True)
    (tmp_path / "maitsearch.yaml").write_text("flip: sometimes\n")
    with pytest.raises(DataError, match=r"maitsearch.yaml: flip 'sometimes': expected true or false"):
        load_data(str(tmp_path), image_size=8)


# ---- the command ------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--proxy", "quick", "--target", "quick"],  # the quick config's one seed, not a flag the user gave
     "--proxy quick: seeds 1: a transfer pairs at least 2 seeds per placement; one seed leaves no seed noise to "
     "judge the regret by; give --seeds 2"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "1"], "--seeds 1: a transfer pairs at least 2 seeds"),
    (["--proxy", "quick", "--target", "nosuch", "--seeds", "2"], "--target nosuch: no such file or preset"),
    (["--proxy", "nosuch.yaml", "--target", "quick", "--seeds", "2"], "--proxy nosuch.yaml: no such file"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--placements", "sch1"],
     "at least 2 different placements"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--placements", "sch9"],  # named before counted
     "placement sch9: not a preset"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--top", "2"], "--top 2: the number of a --from run's"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--placements", "none,nosuch"], "nosuch"),
    (["--proxy", "quick", "--target", "default", "--seeds", "2", "--placements",
      "none,results/default-l24h3/best.yaml"], "the spec is 24 layers x 3 heads, the run 4 x 3"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--from", "nosuch"], "run nosuch: no run folder"),
    (["--proxy", "quick", "--target", "quick", "--seeds", "2", "--name", "../out"], "--name '../out'"),
])
def test_bad_transfer_commands_are_one_line_before_anything_trains(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(ROOT)  # so results/default-l24h3/best.yaml is found
    result = CliRunner().invoke(app, ["transfer", *args, "--results", str(tmp_path / "results")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_from_a_run_adds_its_most_accurate_placements_and_its_answer(tmp_path):
    """confirm's choice: the run's top placements beyond those already listed, then its answer."""
    from maitsearch.config import SearchConfig
    from maitsearch.runs import RunStore, TrialRecord
    from maitsearch.search.transfer import plan_transfer
    from maitsearch.spec import MaskSpec, preset

    store = RunStore(tmp_path, "searched")
    store.write_config(SearchConfig(layers=4, heads=3, seeds=2).to_dict())
    specs = [preset("none", 4, 3), MaskSpec.from_counts([3, 3, 0, 0], 3), MaskSpec.from_counts([2, 0, 0, 0], 3),
             MaskSpec.from_counts([1, 1, 0, 0], 3), preset("all", 4, 3)]
    for number, (spec, top1) in enumerate(zip(specs, (0.90, 0.95, 0.93, 0.80, 0.99))):
        record = TrialRecord(number, "assign", spec, seeds=[0, 1], val_top1=[top1] * 2, test_top1=[top1] * 2,
                             extra={"key": spec.key()})
        store.write_trial(record, "als", "digits")
    store.write_answer(TrialRecord(3, "assign", specs[3], seeds=[0, 1], val_top1=[0.8] * 2).to_spec(
        "searched", "als", "digits"))
    plan = plan_transfer("quick", "quick", placements=["none", "all"], from_run="searched", top=1, seeds=2,
                         results_root=tmp_path)
    trial = lambda number: str(store.trial_path(number))  # noqa: E731
    assert plan.placements == ["none", "all", trial(1), trial(3)], "all is listed already: trial 4 is not added"
    assert plan.labels == ["none", "all", "searched/trial-1", "searched/trial-3"]
    assert "--from searched --top 1" in plan.command


def test_a_device_reaches_both_sides_and_the_command_and_a_study_resumes_only_on_it(tmp_path):
    """--device as run takes it: both sides' proxy.device, the recorded command; a study begun on
    --device cpu and re-run on auto (a GPU, where there is one) would mix two numerics, so it is
    refused with the way out."""
    from maitsearch.runs import RunStore
    from maitsearch.search.transfer import plan_transfer

    plan = plan_transfer("quick", "quick", placements=["none", "all"], seeds=2, results_root=tmp_path, device="cpu")
    assert {config.proxy.device for config in plan.configs.values()} == {"cpu"}
    assert plan.command.endswith("--device cpu")
    assert plan_transfer("quick", "quick", placements=["none", "all"], seeds=2,
                         results_root=tmp_path).configs["target"].proxy.device == "auto"
    RunStore(plan.folder, "proxy").write_config(plan.configs["proxy"].to_dict())
    with pytest.raises(SearchError, match="exists with another proxy config"):
        plan_transfer("quick", "quick", placements=["none", "all"], seeds=2, results_root=tmp_path)  # auto


def test_two_spec_files_the_runs_would_name_alike_are_refused(tmp_path):
    from maitsearch.search.transfer import plan_transfer
    from maitsearch.spec import preset

    for folder in (tmp_path / "x", tmp_path / "y" / "x"):
        folder.mkdir(parents=True)
        preset("sch1", 4, 3).save(folder / "best.yaml")
    with pytest.raises(ConfigError, match="would share the name x/best"):
        plan_transfer("quick", "quick", placements=["none", str(tmp_path / "x" / "best.yaml"),
                                                    str(tmp_path / "y" / "x" / "best.yaml")],
                      seeds=2, results_root=tmp_path / "results")


def _summarize_module(monkeypatch):
    """results/summarize.py, a script, imported as a module (dataclasses need it in sys.modules)."""
    spec = importlib.util.spec_from_file_location("results_summarize", ROOT / "results" / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "results_summarize", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_committed_study_reads_back_as_data_and_draws_its_scatter_again(tmp_path):
    """results on a transfer study: --format gives its placements on both sides, --plot redraws
    scatter.png, and --trial points to its runs (it was ignored, silently, as were the others);
    beside a run it is not compared field by field, having no one config."""
    committed = ROOT / "results" / "transfer-wide"
    study = yaml.safe_load((committed / "transfer.yaml").read_text())
    shown = CliRunner().invoke(app, ["results", str(committed), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert [row["placement"] for row in rows] == [p["placement"] for p in study["placements"]]
    for row, placement in zip(rows, study["placements"]):
        for side in ("proxy", "target"):
            assert float(row[f"{side}_top1"]) == pytest.approx(placement[side]["mean"], abs=1e-6)
            assert float(row[f"{side}_rank"]) == placement[side]["rank"]
    refused = CliRunner().invoke(app, ["results", str(committed), "--trial", "1"])
    assert refused.exit_code == 2 and refused.stderr.startswith(
        f"error: --trial: transfer-wide is a transfer study, whose trials are in its runs: maitsearch results proxy "
        f"--results {committed} --trial 1")
    beside = CliRunner().invoke(app, ["results", "transfer-wide", "default-l24h3", "--results", str(ROOT / "results")])
    assert beside.exit_code == 0 and beside.stderr == (  # its sides' configs are not one to compare with a run's
        f"warning: transfer-wide is a transfer study, with a proxy and a target of its own: `maitsearch results "
        f"--results {committed}` sets its two runs side by side\n")
    (tmp_path / "transfer-wide").mkdir()
    (tmp_path / "transfer-wide" / "transfer.yaml").write_text((committed / "transfer.yaml").read_text())
    drawn = CliRunner().invoke(app, ["results", str(tmp_path / "transfer-wide"), "--plot"])
    assert drawn.exit_code == 0 and drawn.stdout.startswith(f"scatter: {tmp_path / 'transfer-wide' / 'scatter.png'}")
    assert (tmp_path / "transfer-wide" / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_real_tiny_study_through_the_cli_resumes_and_shares_the_trial_cache(tmp_path, monkeypatch):
    """quick as the proxy, a wider 1-epoch target, 2 placements (a preset and a spec file) x 2
    seeds: the study's files match its two runs, a re-run trains nothing, a presets run of the
    proxy made elsewhere is all cache hits and its report links the study, and the listings and
    results/summarize.py read it back."""
    from maitsearch.spec import preset

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAITSEARCH_CACHE")  # the cache beside the top-level results folder, as on a machine
    target = yaml.safe_load((ROOT / "searches" / "quick.yaml").read_text())
    target.update(description="a quick-sized target")
    target["proxy"].update(width=36, epochs=1)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(target))
    (tmp_path / "specs").mkdir()
    preset("sch1", 4, 3).save(tmp_path / "specs" / "mine.yaml")  # named specs/mine in the runs' tables
    args = ["transfer", "--proxy", "quick", "--target", "small.yaml", "--placements", "none,specs/mine.yaml",
            "--seeds", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    folder = tmp_path / "results" / "transfer-small"
    study = yaml.safe_load((folder / "transfer.yaml").read_text())
    assert (tmp_path / ".maitsearch-cache").is_dir() and not (folder / ".maitsearch-cache").exists()
    assert [(row["placement"], row["given"], row["masked"]) for row in study["placements"]] == [
        ("none", "none", 0), ("specs/mine", "specs/mine.yaml", 4)]
    for side, width in (("proxy", 24), ("target", 36)):
        records = {meta["step"]: meta for meta in (yaml.safe_load(path.read_text())["meta"]
                                                   for path in (folder / side / "trials").glob("*.yaml"))}
        assert set(records) == {"none", "specs/mine"}
        for row in study["placements"]:
            assert row[side]["values"] == records[row["placement"]]["top1_seeds"]
            assert records[row["placement"]]["seeds"] == [0, 1]
        assert yaml.safe_load((folder / side / "search.yaml").read_text())["proxy"]["width"] == width
    means = {side: [row[side]["mean"] for row in study["placements"]] for side in ("proxy", "target")}
    tau = study["kendall_tau"]
    assert (tau is None and len(set(means["target"])) == 1) or tau == pytest.approx(
        scipy.stats.kendalltau(means["proxy"], means["target"]).statistic)
    assert study["command"] == ("maitsearch transfer --proxy quick --target small.yaml --placements "
                                "none,specs/mine.yaml --seeds 2 --name transfer-small --results results")
    report = (folder / "report.md").read_text()
    assert f"**Verdict: {study['verdict']}.**" in report and (folder / "scatter.png").stat().st_size > 0
    assert "This run is the proxy side of the transfer study transfer-small" in (folder / "proxy" / "report.md").read_text()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "proxy: 0 trained" in again.output and "target: 0 trained" in again.output
    assert yaml.safe_load((folder / "transfer.yaml").read_text()) == study

    # the same placements by other names: the trial cache keys on the placement, not its name
    elsewhere = CliRunner().invoke(app, ["run", "--strategy", "presets", "--config", "quick", "--baselines",
                                         "none,sch1", "--seeds", "2", "--name", "elsewhere"])
    assert elsewhere.exit_code == 0 and "(0 trained, 0 reused, 0 from the run folder, 4 seed(s) from the trial cache" in \
        elsewhere.output
    report = (tmp_path / "results" / "elsewhere" / "report.md").read_text()
    assert "This proxy has been checked against 1 target(s):" in report
    assert "[transfer-small](../transfer-small/report.md), target `small.yaml`" in report

    listing = CliRunner().invoke(app, ["results", "--format", "csv"])
    rows = {line.split(",")[0]: line for line in listing.output.splitlines()[1:]}
    assert "transfer,digits -> digits" in rows["transfer-small"] and "ok: transfer study" in rows["transfer-small"]
    study_row = next(row for row in csv.DictReader(io.StringIO(listing.output)) if row["name"] == "transfer-small")
    assert study_row["trials"] == "4" and study_row["complete"] == "4"  # two placements on each side
    assert float(study_row["seconds"]) > 0 and study_row["best_top1"] == ""  # trained once; two tasks, no one best
    assert study_row["all_cached"] == "False"  # the first invocation trained both sides
    inside = CliRunner().invoke(app, ["results", "--results", str(folder), "--format", "csv"])
    assert sorted(line.split(",")[0] for line in inside.output.splitlines()[1:]) == ["proxy", "target"]
    shown = CliRunner().invoke(app, ["results", "transfer-small"])
    assert shown.exit_code == 0 and f"verdict: {study['verdict']}" in shown.output

    summarize = _summarize_module(monkeypatch)
    monkeypatch.setattr(summarize, "ROOT", tmp_path / "results")
    section = "\n".join(summarize.transfer_section())
    assert "### transfer-small: `quick` to `small.yaml`" in section and study["command"] in section
    assert study["verdict"] in section
