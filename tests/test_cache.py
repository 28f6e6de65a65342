"""The trial cache shared by runs: keys, hits, misses, races, damage and the CLI."""

import dataclasses
import json
import multiprocessing
import os

import pytest
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.config import ProxyConfig
from maitsearch.runs.cache import CorruptEntry, TrialCache, cache_key, digest
from maitsearch.search.launch import run_search
from maitsearch.spec import MaskSpec, preset
from maitsearch.training import TrialResult, fit

SPEC = preset("sch1", 2, 3)
PROXY = ProxyConfig(layers=2, heads=3, width=24, data="digits", image_size=16, patch_size=2, epochs=1,
                    batch_size=64, eval_every=1)

# One changed value per ProxyConfig field: each must give a different key.
CHANGED = {"layers": 3, "heads": 4, "width": 48, "mlp_ratio": 4.0, "patch_size": 4, "image_size": 32,
           "data": "digits-small", "data_dir": "/elsewhere", "train_copies": 2, "epochs": 2, "shift_augment": 2, "pos_embed": "learned", "pool": "avg", "batch_size": 32, "eval_every": 2, "lr": 2e-3, "min_lr": 0.0,
           "warmup_epochs": 0.0, "weight_decay": 0.0, "label_smoothing": 0.0, "drop_path": 0.1,
           "layer_scale": None, "grad_clip": None, "alpha_lr_scale": 1.0, "alpha_weight_decay": 0.1,
           "weight_init": "", "seed": 1, "device": "cpu", "amp": False, "compile": True}


def test_every_proxy_field_is_part_of_the_key():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(ProxyConfig)}, "a new field needs a row here"
    base = digest(cache_key(SPEC, PROXY, threads=1))
    for field, value in CHANGED.items():
        assert getattr(PROXY, field) != value, field
        assert digest(cache_key(SPEC, PROXY.replace(**{field: value}), threads=1)) != base, field


def test_an_option_at_its_neutral_value_keeps_the_keys_made_before_it_existed():
    from maitsearch.runs.cache import NEUTRAL_OPTIONS

    fields = cache_key(SPEC, PROXY, threads=1)["proxy"]
    assert set(fields) == {f.name for f in dataclasses.fields(ProxyConfig)} - set(NEUTRAL_OPTIONS)
    assert all(getattr(PROXY, name) == value for name, value in NEUTRAL_OPTIONS.items())


@pytest.mark.parametrize("other", [
    preset("sch2", 2, 3), preset("sch1", 2, 3, window=(3, 5)), preset("sch1", 2, 3, semantics="local"),
    preset("random", 2, 3), MaskSpec(layers=2, heads=3, masks=[[], []], soft=[[0.5, 1, 1], [0.5, 1, 1]]),
], ids=["placement", "window", "semantics", "pattern", "soft"])
def test_every_spec_setting_is_part_of_the_key(other):
    assert digest(cache_key(other, PROXY, threads=1)) != digest(cache_key(SPEC, PROXY, threads=1))


def test_permuted_heads_threads_processor_code_version_and_folder_data(tmp_path, monkeypatch):
    base = cache_key(SPEC, PROXY, threads=1)
    permuted = MaskSpec(layers=2, heads=3, masks=[[2], [1]])  # the same experiment, canonically
    assert digest(cache_key(permuted, PROXY, threads=1)) == digest(base)
    assert digest(cache_key(SPEC, PROXY, threads=2)) != digest(base)
    monkeypatch.setattr("maitsearch.runs.cache.machine_identity", lambda device: "cpu:x86_64:AVX2:another")
    assert digest(cache_key(SPEC, PROXY, threads=1)) != digest(base), "another processor, another entry"
    monkeypatch.undo()
    monkeypatch.setattr("maitsearch.runs.cache.TRAINING_VERSION", 999)
    assert digest(cache_key(SPEC, PROXY, threads=1)) != digest(base)
    monkeypatch.undo()
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
    folder = PROXY.replace(data=str(tmp_path))
    before = digest(cache_key(SPEC, folder, threads=1))
    os.utime(tmp_path / "train", ns=(1, 1))  # the tree changed on disk
    assert digest(cache_key(SPEC, folder, threads=1)) != before


@pytest.mark.slow
def test_a_cached_result_is_the_fresh_one(tmp_path, digits):
    cache = TrialCache(tmp_path)
    key = cache_key(SPEC, PROXY, threads=1)
    assert cache.get(key) is None
    fresh = fit(SPEC, PROXY, digits)
    cache.put(key, fresh)
    again = cache.get(key)
    assert again.to_dict() == json.loads(json.dumps(fresh.to_dict()))  # every number, to the last bit
    rerun = fit(SPEC, PROXY, digits)  # and training again gives the same numbers
    assert (rerun.val_top1, rerun.test_top1, rerun.als) == (again.val_top1, again.test_top1, again.als)
    assert cache.put(key, TrialResult(status="pruned")) is None, "only complete results are cached"


def _write_many(folder: str, value: float, rounds: int) -> None:
    cache = TrialCache(folder)
    for _ in range(rounds):
        cache.put(cache_key(SPEC, PROXY, threads=1), TrialResult(status="complete", val_top1=value))


@pytest.mark.slow
def test_two_processes_racing_on_one_key(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(tmp_path), value, 200)) for value in (0.25, 0.75)]
    for writer in writers:
        writer.start()
    cache, seen = TrialCache(tmp_path), set()
    while any(writer.is_alive() for writer in writers):
        result = cache.get(cache_key(SPEC, PROXY, threads=1))  # never half a file
        if result is not None:
            seen.add(result.val_top1)
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert cache.get(cache_key(SPEC, PROXY, threads=1)).val_top1 in (0.25, 0.75)
    assert seen <= {0.25, 0.75}
    assert not list(tmp_path.rglob("*.tmp")), "no temp file left behind"


@pytest.mark.slow
def test_a_corrupt_entry_is_ignored_with_a_warning_and_retrained(quick_config, digits, tmp_path):
    config = quick_config.replace(strategy="presets", baselines=["none"], proxy=quick_config.proxy.replace(epochs=1),
                                  cache=str(tmp_path / "cache"))
    first = run_search(config, results_root=tmp_path, name="first", data=digits)
    (entry,) = list((tmp_path / "cache").rglob("*.json"))
    entry.write_text('{"key": {"half a fi')
    with pytest.raises(CorruptEntry):
        TrialCache(tmp_path / "cache").get(json.loads(json.dumps(cache_key(
            preset("none", 4, 3), config.proxy, threads=1))))
    events = []
    second = run_search(config, results_root=tmp_path, name="second", data=digits, on_event=events.append)
    warnings = [e.message for e in events if type(e).__name__ == "CacheEntryIgnored"]
    assert len(warnings) == 1 and str(entry) in warnings[0] and "retrained" in warnings[0]
    assert second.records[0].cached == 0 and second.records[0].val_top1 == first.records[0].val_top1
    assert json.loads(entry.read_text())["result"]["val_top1"] == first.records[0].val_top1[0]  # rewritten whole


@pytest.mark.slow
def test_a_second_strategy_reuses_the_baselines(quick_config, digits, tmp_path):
    """als then soft on one proxy: soft's none and sch1 come from the cache, trained by als."""
    config = quick_config.replace(proxy=quick_config.proxy.replace(epochs=1), cache=str(tmp_path / "cache"))
    als = run_search(config, results_root=tmp_path, name="als", data=digits)
    soft = run_search(config.replace(strategy="soft"), results_root=tmp_path, name="soft", data=digits)
    baselines = {r.label: r for r in soft.records if r.step == "baseline"}
    assert set(baselines) == {"baseline none", "baseline sch1"}
    assert all(r.cached == 1 and r.seconds == 0 for r in baselines.values())
    first = {r.label: r.val_top1 for r in als.records}
    assert all(r.val_top1 == first[label] for label, r in baselines.items())
    assert next(r for r in soft.records if r.step == "soft").cached == 0
    assert soft.cached == 2, "the run's own count: the two baselines came whole from the cache"
    assert "from the trial cache" in (tmp_path / "soft" / "report.md").read_text()


@pytest.mark.slow
def test_cache_list_and_clear(quick_config, digits, tmp_path):
    config = quick_config.replace(strategy="presets", baselines=["none", "sch1", "sch1"],  # the last: a repeat
                                  proxy=quick_config.proxy.replace(epochs=1), cache=str(tmp_path / "cache"))
    run_search(config, results_root=tmp_path / "results", name="r", data=digits)
    run_search(config, results_root=tmp_path / "results", name="again", data=digits)  # trains nothing: the
    # cache has two seeds, and the repeat is the run's own second trial
    runner = CliRunner()
    runs = runner.invoke(app, ["results", "--results", str(tmp_path / "results"), "--format", "csv"]).stdout
    assert runs.splitlines()[0].split(",")[-2:] == ["all_cached", "status"]
    assert {row.split(",")[0]: row.split(",")[-2] for row in runs.splitlines()[1:]} == {"again": "True", "r": "False"}
    table = runner.invoke(app, ["results", "--results", str(tmp_path / "results")]).stdout
    assert "cached" in next(line for line in table.splitlines() if "again" in line)
    assert " min " in next(line for line in table.splitlines() if "│ r " in line)
    listed = runner.invoke(app, ["cache", "list", "--cache", str(tmp_path / "cache")])
    assert listed.exit_code == 0 and "2 entries" in listed.stdout
    assert "0000" in listed.stdout and "1111" in listed.stdout
    cleared = runner.invoke(app, ["cache", "clear", "--cache", str(tmp_path / "cache")])
    assert cleared.exit_code == 0 and "removed 2" in cleared.stdout
    assert not list((tmp_path / "cache").rglob("*.json"))
    emptied = runner.invoke(app, ["cache", "list", "--cache", str(tmp_path / "cache")])
    assert emptied.exit_code == 0 and emptied.stdout == f"trial cache {tmp_path / 'cache'}: empty\n"


def test_cache_commands_refuse_a_file_for_the_cache_folder(tmp_path):
    (tmp_path / "notes").write_text("a file where the cache folder should be")
    for command in ("list", "clear"):
        refused = CliRunner().invoke(app, ["cache", command, "--cache", str(tmp_path / "notes")])
        assert refused.exit_code == 2
        assert refused.stderr == f"error: trial cache {tmp_path / 'notes'}: a file, not a folder\n"
    assert (tmp_path / "notes").read_text() == "a file where the cache folder should be"


def test_cache_list_tells_apart_placements_that_share_their_masks():
    from maitsearch.cli.cache import _placement

    assert _placement(preset("sch1", 2, 3).key()) == "11"
    assert _placement(preset("random", 2, 3).key()) == "11 random0"
    assert _placement(preset("sch1", 2, 3, window=(3, 5), semantics="local").key()) == "11 w3x5 local"
    soft = MaskSpec(layers=2, heads=3, masks=[[], []], soft=[[0.5, 1, 1], [0.5, 1, 1]])
    assert _placement(soft.key()) == "00 soft"
