"""Search configs: presets, defaults, strict keys, flags over presets, reproducible search.yaml."""

import dataclasses
import re

import pytest
import yaml

from maitsearch.cli.run import build_config
from maitsearch.config import (ProxyConfig, SearchConfig, config_from_dict, load_config, preset_names,
                               resolve_config_path)
from maitsearch.errors import ConfigError


def test_default_preset_is_the_built_in_default():
    assert load_config("default").replace(description="") == SearchConfig()


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_says_what_it_is(name):
    path = resolve_config_path(name)
    config = load_config(name)
    assert config.description, "each preset describes itself"
    assert config.proxy.layers == config.layers and config.proxy.heads == config.heads
    assert path.read_text().startswith("#"), "each preset records its proxy and calibration in a comment"


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = build_config("quick", layers=6, strategy="optuna", trials=9, seeds=2, epochs=5, storage="journal:x.log",
                          objectives="accuracy,attention_cost", space="blocks", sampler="gp", pruner="hyperband",
                          round_=True, semantics="local", window="3x5", max_failures=7, heads=5, width=50)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    assert load_config(path) == config
    assert (config.layers, config.proxy.layers, config.trials, config.seeds, config.proxy.epochs) == (6, 6, 9, 2, 5)
    assert config.optuna.objectives == ["accuracy", "attention_cost"] and config.soft.round
    assert config.window == [3, 5] and config.max_failures == 7 and (config.proxy.heads, config.proxy.width) == (5, 50)
    assert config.proxy.lr == load_config("quick").proxy.lr, "flags change only what they name"


def test_a_task_brings_its_own_image_and_patch_size():
    config = build_config(None, data="digits")
    assert (config.proxy.image_size, config.proxy.patch_size) == (16, 2)
    shifted = build_config("quick", data="digits-shift")
    assert (shifted.proxy.image_size, shifted.proxy.patch_size) == (24, 3)


@pytest.mark.parametrize("data,message", [
    ({"strategy": "als", "colour": 1}, "unknown field(s) colour"),
    ({"proxy": {"widht": 48}}, "proxy: unknown field(s) widht"),
    ({"optuna": "tpe"}, "optuna: expected a mapping"),
    (["als"], "a search config is a mapping"),
])
def test_unknown_or_misshapen_keys_are_refused(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_dict(data, where="x.yaml")


@pytest.mark.parametrize("data,message", [
    ({"baselines": "none"}, "x.yaml: baselines: expected a list of strings, got 'none'"),
    ({"baselines": ["none", 31]}, "x.yaml: baselines: expected a list of strings, got ['none', 31]"),
    ({"window": 3}, "x.yaml: window: expected a list of whole numbers, got 3"),
    ({"layers": 2.5}, "x.yaml: layers: expected a whole number, got 2.5"),
    ({"seeds": True}, "x.yaml: seeds: expected a whole number, got True"),
    ({"keep_checkpoints": "maybe"}, "x.yaml: keep_checkpoints: expected true or false, got 'maybe'"),
    ({"cache": 5}, "x.yaml: cache: expected a string or null, got 5"),
    ({"proxy": {"lr": "fast"}}, "x.yaml: proxy: lr: expected a number, got 'fast'"),
    ({"proxy": {"lr": "5e-4"}}, "x.yaml: proxy: lr: expected a number, got '5e-4' (YAML reads 1e-3 as text: "
                                "write 0.001 or 1.0e-3)"),
    ({"optuna": {"cost_grid": "14"}}, "x.yaml: optuna: cost_grid: expected a list of whole numbers or a whole "
                                      "number or null, got '14'"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_the_field(data, message):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, where="x.yaml")
    assert str(caught.value) == message


def test_numbers_and_nulls_are_taken_where_the_field_allows_them():
    config = config_from_dict({"proxy": {"lr": 1, "layer_scale": None}, "optuna": {"cost_grid": [14, 14]},
                               "supernet": {"epochs": None}}, where="x.yaml")
    assert (config.proxy.lr, config.proxy.layer_scale, config.optuna.cost_grid) == (1, None, [14, 14])


def test_proxy_follows_the_search_shape():
    config = SearchConfig(layers=6, heads=2)
    assert (config.proxy.layers, config.proxy.heads) == (6, 2)
    assert dataclasses.replace(config, layers=9).proxy.layers == 9


def test_run_identity_ignores_how_numbers_are_spelled():
    from maitsearch.search.launch import config_digest

    config = SearchConfig()
    spelled = config.replace(proxy=config.proxy.replace(warmup_epochs=2, lr=0.003))  # int 2 for 2.0, 0.003 spelled anew
    assert config_digest(spelled) == config_digest(config)
    assert config_digest(config.replace(seeds=5)) != config_digest(config)
    assert config_digest(config.replace(jobs=7)) == config_digest(config), "execution settings do not count"


@pytest.mark.parametrize("change,match", [
    ({"pool": "max"}, r"proxy.pool: unknown 'max'; choose one of token, avg"),
    ({"pos_embed": "rope"}, r"proxy.pos_embed: unknown 'rope'; choose one of learned, sincos$"),
    ({"pos_embed": "sincso"}, r"proxy.pos_embed: unknown 'sincso'; choose one of learned, sincos \(did you mean sincos\?\)"),
    ({"shift_augment": -1}, r"proxy.shift_augment -1: a shift in pixels"),
    ({"drop_path": 1.0}, r"^proxy.drop_path 1.0: expected at least 0 and below 1$"),
    ({"warmup_epochs": -1.0}, r"^proxy.warmup_epochs -1.0: expected at least 0$"),
    ({"mlp_ratio": float("nan")}, r"^proxy.mlp_ratio nan: expected above 0$"),
])
def test_proxy_choices_are_checked_before_anything_trains(change, match):
    from maitsearch.errors import ConfigError
    from maitsearch.search.checks import check_proxy

    with pytest.raises(ConfigError, match=match):
        check_proxy(ProxyConfig().replace(**change))


def test_a_training_config_given_as_a_search_config_is_named(tmp_path):
    trained = tmp_path / "config.yaml"
    trained.write_text("model: deit_tiny_patch16_224\nrecipe: deit\nepochs: 300\n")
    with pytest.raises(ConfigError, match=rf"^--proxy {trained}: a training config \(maitsearch train -c\)"):
        load_config(trained, flag="--proxy")


def test_optuna_heartbeats_are_checked_as_settings_not_as_a_storage_that_cannot_connect():
    from maitsearch.config import OptunaSettings
    from maitsearch.search.checks import check_config

    with pytest.raises(ConfigError, match=r"^optuna.grace_period 0: expected at least 1$"):
        check_config(SearchConfig(strategy="optuna", optuna=OptunaSettings(grace_period=0)))


@pytest.mark.parametrize("change,match", [({"layers": 0}, r"^--layers 0: "), ({"heads": -2}, r"^--heads -2: ")])
def test_the_search_shape_is_named_as_set_not_as_the_proxy_copies_it(change, match):
    from maitsearch.search.checks import check_config

    with pytest.raises(ConfigError, match=match):
        check_config(SearchConfig(**change))


def test_a_preset_name_resolves_from_the_working_folder_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("quick").parent.name == "presets", "the shipped preset, outside a checkout"
    (tmp_path / "searches").mkdir()
    own = tmp_path / "searches" / "quick.yaml"
    own.write_text("# mine\ndescription: my own quick\nlayers: 2\n")
    assert resolve_config_path("quick") == own
    assert load_config("quick").layers == 2
    with pytest.raises(ValueError, match="no such file or preset .presets: .*default"):
        load_config("no-such-preset")


def test_attention_cost_grid_is_the_deployment_grid_when_given():
    from maitsearch.errors import ConfigError
    from maitsearch.model.locality import attention_cost
    from maitsearch.runs.record import TrialRecord
    from maitsearch.search.optuna_study import OptunaStrategy
    from maitsearch.search.launch import config_digest
    from maitsearch.spec import preset

    quick = load_config("quick").replace(strategy="optuna")
    # the digest main computed before cost_grid existed: unset, it names and resumes runs as before
    assert config_digest(SearchConfig()) == "2bd518"
    deployed = quick.replace(optuna=dataclasses.replace(quick.optuna, objectives=["accuracy", "attention_cost"],
                                                        cost_grid=14))
    assert config_digest(deployed) != config_digest(quick.replace(optuna=dataclasses.replace(
        quick.optuna, objectives=["accuracy", "attention_cost"])))
    spec = preset("all", quick.layers, quick.heads)
    record = TrialRecord(number=0, step="optuna", spec=spec, val_top1=[0.5])
    # a fully masked model keeps 1 prefix row, 1 prefix column and 40 x 40 window logits of 197^2 at 14x14
    assert OptunaStrategy(deployed).values(record)[1] == pytest.approx((197 + 196 + 40 * 40) / 197 ** 2)
    assert OptunaStrategy(deployed).values(record)[1] == attention_cost(spec, (14, 14), 1)
    proxy_cost = OptunaStrategy(deployed.replace(optuna=dataclasses.replace(deployed.optuna, cost_grid=None)))
    assert proxy_cost.values(record)[1] == attention_cost(spec, quick.proxy.grid, 1)
    for bad in (0, [14], [14, "x"], True):
        with pytest.raises(ConfigError, match="optuna.cost_grid"):
            OptunaStrategy(deployed.replace(optuna=dataclasses.replace(deployed.optuna, cost_grid=bad)))


def test_a_run_asked_again_with_other_settings_is_told_the_command_that_goes_on_with_it(tmp_path, monkeypatch):
    from maitsearch.errors import SearchError
    from maitsearch.search.launch import prepare_store

    monkeypatch.chdir(tmp_path)
    quick = load_config("quick")
    prepare_store(quick, "results", "r")
    with pytest.raises(SearchError) as refused:
        prepare_store(quick.replace(seeds=2), "results", "r")
    assert str(refused.value) == ("run r exists with a different config (seeds: 1 -> 2); go on with it as it was "
                                  "(`maitsearch run --config results/r/search.yaml --name r --results results`), "
                                  "or pick another --name")
