"""The supernet strategy: the sampler its training draws from, scores with inherited weights
against a model built for the placement, resume without training or scoring twice, its settings,
ranking fidelity from stand-alone means, and one run through the CLI."""

import dataclasses
import json
import subprocess
import sys
from collections import Counter

import pytest
import torch

from maitsearch.config import OptunaSettings, SearchConfig, SupernetSettings, load_config
from maitsearch.errors import ConfigError
from maitsearch.search.optuna_study import staircase
from maitsearch.search.supernet_jobs import PlacementSampler, _staircases
from maitsearch.spec import MaskSpec, preset

DRAWS = 4000  # a share's standard error is at most 0.008 here: the tolerances below are 4 of them


def test_counts_sampling_draws_each_count_of_each_layer_equally_on_the_lowest_heads():
    sampler = PlacementSampler("counts", layers=6, heads=3, seed=0)
    drawn = [sampler(step) for step in range(DRAWS)]
    for layer in range(6):
        shares = Counter(spec.counts()[layer] for spec in drawn)
        assert all(abs(shares[count] / DRAWS - 1 / 4) < 0.03 for count in range(4)), (layer, shares)
    assert all(spec == spec.canonical() for spec in drawn), "counts mask the lowest heads, as the space scores them"
    assert sampler(17) == PlacementSampler("counts", layers=6, heads=3, seed=0)(17), "a pure function of the step"
    other = PlacementSampler("counts", layers=6, heads=3, seed=1)
    assert sum(sampler(step) != other(step) for step in range(100)) > 90, "each seed draws its own placements"


def test_heads_sampling_draws_every_subset_of_a_layer_equally():
    sampler = PlacementSampler("heads", layers=4, heads=3, seed=0)
    drawn = [sampler(step) for step in range(DRAWS)]
    for layer in range(4):
        subsets = Counter(spec.masks[layer] for spec in drawn)
        assert len(subsets) == 8 and all(abs(n / DRAWS - 1 / 8) < 0.025 for n in subsets.values()), subsets
    assert any(spec != spec.canonical() for spec in drawn), "heads are drawn as they are, not reordered"


def test_fair_sampling_runs_each_count_once_per_layer_in_every_cycle():
    heads, layers = 3, 5
    sampler = PlacementSampler("fair", layers=layers, heads=heads, seed=0)
    drawn = [sampler(step) for step in range(400)]
    for cycle in range(0, 400, heads + 1):
        for layer in range(layers):
            assert sorted(spec.counts()[layer] for spec in drawn[cycle:cycle + heads + 1]) == [0, 1, 2, 3]
    openers = Counter(spec.counts()[0] for spec in drawn[::heads + 1])  # the order is drawn, not fixed
    assert all(abs(openers[count] / 100 - 1 / 4) < 0.15 for count in range(4)), openers


def test_staircase_sampling_is_uniform_over_the_blocks_space():
    layers, heads = 6, 3
    shapes = _staircases(layers)
    assert len(shapes) == 84  # C(6 + 3, 3) staircases
    expected = Counter((layer, staircase(layers, heads, *shape)[layer]) for shape in shapes for layer in range(layers))
    sampler = PlacementSampler("staircase", layers=layers, heads=heads, seed=0)
    drawn = Counter((layer, count) for step in range(DRAWS) for layer, count in enumerate(sampler(step).counts()))
    for (layer, count), ways in expected.items():
        assert abs(drawn[(layer, count)] / DRAWS - ways / len(shapes)) < 0.03, (layer, count)
    assert set(drawn) == set(expected), "nothing outside the space"


@pytest.fixture(scope="module")
def tiny_supernet(tmp_path_factory, quick_config, digits):
    """A quick-proxy supernet trained for one epoch, and the held-out data it is scored on."""
    from maitsearch.training.supernet import held_out, train_supernet

    out = tmp_path_factory.mktemp("supernet") / "seed-0.pt"
    data = held_out(digits, 0.2)
    result = train_supernet(PlacementSampler("heads", 4, 3, seed=0), quick_config.proxy, data, epochs=1, out=out)
    assert result.status == "complete" and out.exists() and not out.with_name("seed-0.partial.pt").exists()
    return out, data


def reference_model(weights, proxy, spec):
    """A plain timm ViT of the proxy's shape, built here without maitsearch's builder, holding the
    supernet's weights (strictly: a supernet has no parameter a ViT lacks), then masked."""
    from timm.models import VisionTransformer

    from maitsearch import apply_mask_spec

    model = VisionTransformer(img_size=proxy.image_size, patch_size=proxy.patch_size, in_chans=1, num_classes=10,
                              embed_dim=proxy.width, depth=proxy.layers, num_heads=proxy.heads,
                              mlp_ratio=proxy.mlp_ratio, qkv_bias=True, init_values=proxy.layer_scale)
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    return apply_mask_spec(model, spec).eval()


def test_a_score_with_inherited_weights_is_the_forward_pass_of_a_model_built_for_the_placement(
        tiny_supernet, quick_config):
    from maitsearch.training.supernet import SEARCH_SPLIT, inherited_logits, inherited_scores, load_supernet

    weights, data = tiny_supernet
    proxy = quick_config.proxy
    images, labels = (torch.cat(part) for part in zip(*data.batches(SEARCH_SPLIT, 512)))
    placements = [preset("all", 4, 3), preset("none", 4, 3), MaskSpec.from_counts([3, 1, 0, 2], 3),
                  MaskSpec(layers=4, heads=3, masks=[[2], [0, 2], [], [1]])]  # heads other than the lowest
    supernet = load_supernet(weights, proxy, data)  # one model, reconfigured from placement to placement
    rows = inherited_scores([supernet], placements, proxy, data)
    for spec, row in zip(placements, rows):
        with torch.no_grad():
            expected = reference_model(weights, proxy, spec)(images)
        assert torch.allclose(inherited_logits(supernet, spec, images), expected, atol=1e-6, rtol=0)
        assert row["top1"] == [pytest.approx((expected.argmax(-1) == labels).sum().item() / len(labels), abs=1e-12)]
        assert row["loss"] == [pytest.approx(torch.nn.functional.cross_entropy(expected, labels).item(), abs=1e-6)]
    assert len({row["loss"][0] for row in rows}) == len(rows), "the placements are different sub-networks"


def test_the_last_blocks_masks_are_one_network_with_a_class_token_and_two_without(tiny_supernet, quick_config):
    """With a class token the classifier reads only the class token's last output, whose row no
    mask touches: placements that differ only in the last block give the same logits (a masked
    head runs another kernel, so to rounding), and network_key says so. Mean pooling reads every patch, so there they are two networks."""
    from timm.models import VisionTransformer

    from maitsearch import apply_mask_spec
    from maitsearch.search.supernet import network_key
    from maitsearch.training.supernet import SEARCH_SPLIT

    weights, data = tiny_supernet
    images = torch.cat([x for x, _ in data.batches(SEARCH_SPLIT, 512)])
    open_last, masked_last = MaskSpec.from_counts([3, 1, 0, 0], 3), MaskSpec.from_counts([3, 1, 0, 2], 3)
    with torch.no_grad():
        token = [reference_model(weights, quick_config.proxy, spec)(images) for spec in (open_last, masked_last)]
    assert torch.allclose(token[0], token[1], atol=1e-6, rtol=0), "equal but for the kernels' rounding"
    assert network_key(open_last, "token") == network_key(masked_last, "token")

    torch.manual_seed(0)
    proxy = quick_config.proxy
    avg = VisionTransformer(img_size=proxy.image_size, patch_size=proxy.patch_size, in_chans=1, num_classes=10,
                            embed_dim=proxy.width, depth=4, num_heads=3, class_token=False, global_pool="avg").eval()
    for parameter in avg.parameters():  # timm's init is tiny on purpose; here the masks must show
        torch.nn.init.normal_(parameter, std=0.3)
    with torch.no_grad():
        pooled = [apply_mask_spec(avg, spec)(images) for spec in (open_last, masked_last)]
    assert (pooled[0] - pooled[1]).abs().max() > 1e-4, "a hundred times the rounding allowed above"
    assert network_key(open_last, "avg") != network_key(masked_last, "avg")
    assert network_key(masked_last, "token") != network_key(MaskSpec.from_counts([3, 1, 1, 2], 3), "token")


def test_held_out_images_are_no_training_images_and_come_in_shifted_views(digits):
    from maitsearch.training.supernet import SEARCH_SPLIT, held_out

    shifted = held_out(digits.with_shift(2), 0.25, views=3)
    train, search = shifted.splits["train"][0], shifted.splits[SEARCH_SPLIT][0]
    assert len(train) + len(search) // 3 == digits.size("train") and len(search) % 3 == 0
    rows = {tuple(image.flatten().tolist()) for image in train}
    first = search[:len(search) // 3]
    assert not any(tuple(image.flatten().tolist()) in rows for image in first), "held out of training"
    assert not torch.equal(first, search[len(first):2 * len(first)]), "the other views are shifted"
    assert held_out(digits, 0.25, views=3).size(SEARCH_SPLIT) == len(first), "without shifts, one view"
    assert torch.equal(held_out(digits, 0.25).splits[SEARCH_SPLIT][0], held_out(digits, 0.25).splits[SEARCH_SPLIT][0])


@pytest.mark.slow
def test_an_interrupted_supernet_training_resumes_to_the_same_weights(quick_config, digits, tmp_path):
    from maitsearch.training.supernet import held_out, train_supernet

    data, proxy = held_out(digits, 0.5), quick_config.proxy  # half the images: half the steps
    sampler = PlacementSampler("counts", 4, 3, seed=0)
    whole = train_supernet(sampler, proxy, data, epochs=2, out=tmp_path / "whole.pt")
    steps_per_epoch = whole.steps // 2

    def killed_in_the_second_epoch(step):
        if step == steps_per_epoch + 3:
            raise KeyboardInterrupt
        return sampler(step)

    with pytest.raises(KeyboardInterrupt):
        train_supernet(killed_in_the_second_epoch, proxy, data, epochs=2, out=tmp_path / "resumed.pt")
    assert (tmp_path / "resumed.partial.pt").exists() and not (tmp_path / "resumed.pt").exists()
    resumed = train_supernet(sampler, proxy, data, epochs=2, out=tmp_path / "resumed.pt")
    a, b = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("whole", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert [row["train_loss"] for row in resumed.history] == [row["train_loss"] for row in whole.history]
    assert not (tmp_path / "resumed.partial.pt").exists()


def tiny_config(quick_config, **supernet):
    settings = dict(epochs=1, evaluations=10, batch=5, top=1, fidelity="found")
    return quick_config.replace(strategy="supernet", baselines=["none"],
                                supernet=dataclasses.replace(quick_config.supernet, **{**settings, **supernet}))


@pytest.mark.slow
def test_a_resumed_run_neither_retrains_the_supernet_nor_scores_again(quick_config, digits, tmp_path, monkeypatch):
    """A finished run re-run trains and scores nothing. A run stopped after its first round of
    scores (evaluations.jsonl cut there) scores only what is left, and ends with the rows an
    uninterrupted run wrote: the study is rebuilt from the file, its sampler reseeded per round."""
    from maitsearch.search.launch import run_search
    from maitsearch.training import supernet as training

    counts = Counter()
    for name in ("train_supernet", "inherited_scores"):
        real = getattr(training, name)

        def counted(*args, real=real, name=name, **kwargs):
            counts[name] += 1 if name == "train_supernet" else len(args[1])
            return real(*args, **kwargs)

        monkeypatch.setattr(training, name, counted)
    config = tiny_config(quick_config)
    first = run_search(config, results_root=tmp_path, name="r", data=digits)
    rows_path = tmp_path / "r" / "evaluations.jsonl"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    scored = sum(row["duplicate_of"] is None for row in rows)
    assert counts == {"train_supernet": 1, "inherited_scores": scored}
    assert sum(row["source"] == "search" for row in rows) == 10 and first.answer is not None

    counts.clear()
    (tmp_path / "r" / "supernet" / "seed-0.pt").rename(tmp_path / "seed-0.pt")  # a run committed without weights
    again = run_search(config, results_root=tmp_path, name="r", data=digits)
    assert counts == {} and [r.val_top1 for r in again.records] == [r.val_top1 for r in first.records]
    assert again.answer.spec.key() == first.answer.spec.key()
    (tmp_path / "seed-0.pt").rename(tmp_path / "r" / "supernet" / "seed-0.pt")

    after_round_one = [row for row in rows if row["source"] == "fidelity" or row["number"] < 5]
    rows_path.write_text("".join(json.dumps(row) + "\n" for row in after_round_one))
    run_search(config, results_root=tmp_path, name="r", data=digits)
    assert counts == {"inherited_scores": sum(row["duplicate_of"] is None for row in rows[len(after_round_one):])}
    drop_time = lambda row: {k: v for k, v in row.items() if k != "seconds"}  # noqa: E731
    resumed = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert [drop_time(row) for row in resumed] == [drop_time(row) for row in rows]


@pytest.mark.parametrize("change,message", [
    ({"sampling": "uniform"}, r"supernet.sampling: unknown 'uniform'; choose one of counts, heads, fair, staircase"),
    ({"holdout": 0.9}, r"supernet.holdout 0.9: a fraction of the training images above 0 and at most 0.5"),
    ({"supernets": 0}, r"supernet.supernets 0: expected a whole number of at least 1"),
    ({"epochs": 0}, r"supernet.epochs 0: expected a whole number of at least 1, or null"),
    ({"batch": 2.5}, r"supernet.batch 2.5: expected a whole number"),
    ({"evaluations": 0, "top": 3}, r"supernet.top 3: nothing to retrain without evaluations"),
    ({"fidelity": "always"}, r"supernet.fidelity: unknown 'always'; choose one of found, train, off"),
    ({"optuna": {"sampler": "gp"}}, r"optuna.sampler \(supernet\): unknown 'gp'; choose one of tpe, nsga2, random"),
    ({"optuna": {"space": "full"}}, r"supernet.sampling counts: the full space scores any subset of heads"),
    ({"optuna": {"objectives": ["attention_cost"]}}, r"^optuna.objectives: expected accuracy first"),
])
def test_bad_supernet_settings_are_one_line_errors(change, message):
    from maitsearch.search.registry import make_strategy

    optuna = change.pop("optuna", {})
    config = SearchConfig(strategy="supernet", layers=4, heads=3, supernet=SupernetSettings(**change),
                          optuna=OptunaSettings(**optuna))
    with pytest.raises(ConfigError, match=message) as raised:
        make_strategy(config)
    assert "\n" not in str(raised.value)


def test_the_top_candidates_are_the_best_scores_or_the_pareto_front_first():
    """Ties in score go to the lower held-out loss; with attention_cost, the front comes first:
    b (0.95 at cost 0.9), c (0.90 at 0.5) and d (0.80 at 0.1) are on it, a (0.90 at 0.7) is not.
    b2 is b with its last block masked, with a class token the same network: never a second
    candidate; with mean pooling it is one."""
    from maitsearch.config import ProxyConfig
    from maitsearch.search.registry import make_strategy

    a, b, b2, c, d = "7100", "7710", "7713", "3100", "1000"

    def row(index, placement, score, loss, cost):
        return {"index": index, "source": "search", "placement": placement, "key": placement, "score": score,
                "loss": loss, "values": [score, cost], "duplicate_of": None}

    rows = [row(0, a, 0.90, 0.20, 0.7), row(1, b, 0.95, 0.20, 0.9), row(2, c, 0.90, 0.25, 0.5),
            row(3, d, 0.80, 0.10, 0.1), {**row(4, b, 0.95, 0.20, 0.9), "duplicate_of": 1},
            row(5, b2, 0.95, 0.20, 0.9)]
    config = SearchConfig(strategy="supernet", layers=4, heads=3, supernet=SupernetSettings(top=3))
    single = make_strategy(config)
    single.rows = rows
    assert [r["placement"] for r in single._top()] == [b, a, c]
    pareto = make_strategy(config.replace(optuna=OptunaSettings(sampler="nsga2",
                                                                objectives=["accuracy", "attention_cost"])))
    pareto.rows = rows
    assert [r["placement"] for r in pareto._top()] == [b, c, d]
    pooled = make_strategy(config.replace(proxy=ProxyConfig(pool="avg")))
    pooled.rows = rows
    assert [r["placement"] for r in pooled._top()] == [b, b2, a]


def test_baselines_fill_the_workers_the_supernet_leaves_and_the_rest_train_beside_the_candidates(tmp_path):
    """Two workers, 3 seeds, a 60-epoch supernet on 80% of a 30-epoch proxy's images (1.6 seeds of
    work), two baselines, three candidates. Hand-worked phases (supernet and early baselines, then
    the rest and the candidates): both early 4 + 5 rounds, one 2.6 + 6, none 1.6 + 8. One worker
    has no idle time to fill, eight have room for everything: then all go first."""
    from maitsearch.search.registry import make_strategy
    from maitsearch.search.supernet import makespan

    assert makespan([1.6, 1, 1, 1], 2) == pytest.approx(2.6) and makespan([1.0] * 9, 2) == 5
    assert makespan([], 3) == 0 and makespan([2, 1, 1, 1], 2) == 3
    config = SearchConfig(strategy="supernet", layers=4, heads=3, seeds=3, baselines=["none", "sch1"], jobs=2)
    assert make_strategy(config)._baselines_beside(supernets=1, baselines=2, fidelity=0) == 1
    assert make_strategy(config)._baselines_beside(supernets=0, baselines=2, fidelity=0) == 2, "nothing to fill"
    for jobs in (1, 8):
        assert make_strategy(config.replace(jobs=jobs))._baselines_beside(1, 2, 0) == 2
    strategy = make_strategy(config)
    strategy.folder = tmp_path  # no weights there: the supernet is still to train
    first = strategy._ask_start()
    assert [p.step for p in first] == ["supernet", "baseline"] and first[1].spec.num_masked == 0
    assert [p.spec.num_masked for p in strategy.later_baselines] == [4], "Sch.1 waits for the candidates"


def test_the_supernet_section_leaves_every_existing_run_name_alone():
    from maitsearch.search.launch import config_digest

    config = SearchConfig()
    assert config_digest(config) == "2bd518", "the default ALS run's name (results/default-l24h3 digests so)"
    assert config_digest(config.replace(supernet=SupernetSettings(top=5))) != config_digest(config)


def test_kendall_tau_interval_and_rank_fidelity_on_hand_worked_orders():
    from maitsearch.search.fidelity import rank_fidelity
    from maitsearch.stats import kendall_tau, kendall_tau_interval

    same = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert kendall_tau_interval(same, same) == (1.0, 1.0)
    swapped = [1.0, 3.0, 2.0, 4.0, 5.0, 6.0]  # one discordant pair of 15: tau = 13/15
    assert kendall_tau(same, swapped) == pytest.approx(13 / 15)
    low, high = kendall_tau_interval(same, swapped, resamples=500)
    assert low < 13 / 15 <= high == 1.0
    rows = [{"name": f"p{i}", "placement": f"{i}", "score": s, "standalone": [m, m]} for i, (s, m) in
            enumerate(zip(same, swapped))] + [{"name": "untrained", "placement": "x", "score": 0.5, "standalone": None}]
    fidelity = rank_fidelity(rows, resamples=500)
    assert fidelity["tau"] == pytest.approx(13 / 15) and fidelity["placements"] == 6
    assert fidelity["missing"] == ["untrained"] and fidelity["interval"] == [low, high]
    assert rank_fidelity(rows[:4])["tau"] is None, "four placements are too few"


def test_standalone_means_come_from_runs_of_the_same_proxy_and_the_trial_cache(tmp_path):
    from maitsearch.runs import RunStore, TrialRecord
    from maitsearch.runs.cache import TrialCache, cache_key
    from maitsearch.search.fidelity import StandaloneMeans
    from maitsearch.training import TrialResult

    config = SearchConfig(layers=4, heads=3, seeds=2)
    sch2, first_half = preset("sch2", 4, 3), MaskSpec.from_counts([3, 3, 0, 0], 3)
    for name, proxy in (("same", config.proxy.replace(seed=7)), ("longer", config.proxy.replace(epochs=60))):
        store = RunStore(tmp_path / "results", name)
        store.write_config(config.replace(proxy=proxy).to_dict())
        store.write_trial(TrialRecord(0, "baseline", sch2, seeds=[0, 1], val_top1=[0.9, 0.8]), "als", "digits")
        store.write_trial(TrialRecord(1, "x", first_half, seeds=[0], val_top1=[0.7]), "als", "digits")
    cache = TrialCache(tmp_path / "cache")
    cache.put(cache_key(first_half, config.proxy.replace(seed=1), threads=1), TrialResult("complete", val_top1=0.75))
    means = StandaloneMeans(config, tmp_path / "results", cache)
    assert means.values(sch2) == [0.9, 0.8], "another seed of the same proxy is the same proxy"
    assert means.values(first_half) == [0.7, 0.75], "seed 0 from the run, seed 1 from the cache"
    assert means.values(preset("none", 4, 3)) is None
    assert set(means.found) == {"sch2", "same/trial-1"}, "the longer proxy's trials are another experiment"


def test_the_fidelity_figure_draws_placements_with_a_score_and_stand_alone_seeds(tmp_path):
    from PIL import Image

    from maitsearch.runs.report import fidelity_figure

    rows = [{"name": "none", "placement": "0000", "score": 0.90, "standalone": [0.94, 0.95]},
            {"name": "sch1", "placement": "1111", "score": 0.95, "standalone": [0.96, 0.95, 0.97]},
            {"name": "untrained", "placement": "7777", "score": 0.97, "standalone": None}]
    fidelity_figure({"rows": rows, "tau": None}, tmp_path / "fidelity.png", "run")
    assert Image.open(tmp_path / "fidelity.png").size[0] > 300, "two placements measured both ways: a figure"
    fidelity_figure({"rows": rows[1:], "tau": None}, tmp_path / "one.png", "run")
    assert not (tmp_path / "one.png").exists(), "one point shows no order"


def test_results_plot_draws_the_fidelity_of_a_supernet_run_or_a_calibration(tmp_path):
    """``results RUN --plot`` draws what the report drew: supernet.yaml's fidelity, else
    calibration.yaml's (``calibrate --fidelity``), and says why not where it cannot."""
    from maitsearch.runs.reading import Run

    rows = [{"name": "none", "placement": "0000", "score": 0.90, "standalone": [0.94, 0.95]},
            {"name": "sch1", "placement": "1111", "score": 0.95, "standalone": [0.96, 0.95, 0.97]}]
    for part in ("supernet", "calibration"):
        folder = tmp_path / part
        figures = Run(folder, **{part: {"fidelity": {"rows": rows, "tau": None}}}).plot_all()
        assert figures["fidelity"] == folder / "fidelity.png" and figures["fidelity"].exists(), part
    one_point = Run(tmp_path / "one", supernet={"fidelity": {"rows": rows[:1], "tau": None}}).plot_all()
    assert "two placements measured both ways" in one_point["fidelity"]
    assert "fidelity" not in Run(tmp_path / "plain", calibration={"paired_noise": 0.005}).plot_all()


@pytest.mark.slow
def test_a_supernet_run_through_the_cli_and_its_resume(tmp_path):
    """The quick preset with --strategy supernet, end to end on the embedded digits; then the same
    command again, which resumes without a job (a bad setting's one line: tests/test_bad_inputs.py)."""
    command = [sys.executable, "-m", "maitsearch", "run", "--config", "quick", "--strategy", "supernet",
               "--baselines", "none", "--results", str(tmp_path), "--name", "cli"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "job       supernet" in done.stdout and "ranking fidelity" in done.stdout
    folder = tmp_path / "cli"
    rows = [json.loads(line) for line in (folder / "evaluations.jsonl").read_text().splitlines()]
    assert sum(row["source"] == "search" for row in rows) == load_config("quick").supernet.evaluations
    report = (folder / "report.md").read_text()
    assert "## Supernet" in report and "### Ranking fidelity" in report
    assert (folder / "supernet" / "seed-0.pt").exists() and (folder / "best.yaml").exists()
    before = (folder / "evaluations.jsonl").read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resuming with" in again.stdout and "job " not in again.stdout
    assert (folder / "evaluations.jsonl").read_bytes() == before
