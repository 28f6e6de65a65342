"""maitsearch train: checkpoints every epoch, exact resume after a kill, safe checkpoint loading."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from maitsearch.spec import preset
from maitsearch.errors import ConfigError, ResumeError
from maitsearch.training.full import TrainConfig, load_checkpoint, train

TRAIN_ARGS = ["--model", "mait_tiny_patch16_224", "--depth", "2", "--img-size", "32", "--batch-size", "128",
              "--epochs", "4", "--device", "cpu"]


def run_cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "maitsearch", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def checkpoint_epoch(folder: Path) -> int:
    metrics = folder / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


@pytest.mark.slow
def test_killed_run_resumes_to_the_identical_model(tmp_path):
    spec = preset("sch2", 2, 3).save(tmp_path / "spec.yaml")
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    uninterrupted = run_cli("--spec", str(spec), "--out", str(whole), *TRAIN_ARGS)
    victim = run_cli("--spec", str(spec), "--out", str(broken), *TRAIN_ARGS)
    deadline = time.time() + 600
    while checkpoint_epoch(broken) < 1 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = checkpoint_epoch(broken)
    assert 1 <= killed_at < 4, "the kill landed mid-run"
    assert uninterrupted.wait(timeout=600) == 0, uninterrupted.stderr.read()

    resumed = run_cli("--spec", str(spec), "--out", str(broken), "--resume", *TRAIN_ARGS)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(broken / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 4
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for key in state_a:
            assert torch.equal(torch.as_tensor(state_a[key]), torch.as_tensor(state_b[key])), key
    metrics = pd.read_json(broken / "metrics.jsonl", lines=True)
    assert list(metrics["epoch"]) == [0, 1, 2, 3]
    assert metrics["val_top1"].dtype == float
    assert not list(broken.glob(".*.tmp")), "no temp files left behind"


def test_existing_checkpoint_needs_resume_and_same_settings(tmp_path):
    config = TrainConfig(model="mait_tiny_patch16_224", depth=2, image_size=32, epochs=1, batch_size=256,
                         device="cpu")
    spec = preset("sch1", 2, 3)
    train(spec, config, tmp_path)
    with pytest.raises(ResumeError, match="already holds a checkpoint: add --resume"):
        train(spec, config, tmp_path)
    with pytest.raises(ResumeError, match=r"written with other settings \(mask spec: "):
        train(preset("all", 2, 3), config, tmp_path, resume=True)
    train(spec, config, tmp_path / "requeued", resume=True)  # nothing to resume yet: a fresh start, so a
    assert load_checkpoint(tmp_path / "requeued" / "checkpoint.pt")["epoch"] == 1  # job script always passes it


def test_resuming_a_finished_training_trains_nothing_and_says_so(tmp_path):
    from maitsearch.cli.train import plan_line
    from maitsearch.events import StepDone, TrainingPlan

    config = TrainConfig(model="mait_tiny_patch16_224", depth=2, image_size=32, epochs=1, batch_size=256,
                         device="cpu")
    spec = preset("sch1", 2, 3)
    train(spec, config, tmp_path)
    before = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    events = []
    train(spec, config, tmp_path, resume=True, on_event=events.append)
    assert not [event for event in events if isinstance(event, StepDone)]
    plan = next(event for event in events if isinstance(event, TrainingPlan))
    assert plan_line(plan).endswith("; all 1 epoch already trained, nothing left to train")
    after = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_preset_or_compact_spec_takes_the_models_layers_and_heads(tmp_path):
    """train --spec sch2 (or none, the unmasked baseline) needs no YAML: the shape is the model's."""
    from maitsearch.training.full import placement_for_model

    def placement(spec, **settings):
        config = TrainConfig(**settings)
        found, sized = placement_for_model(spec, config)
        assert sized == config  # the model's own size: nothing to change
        return found

    assert placement("sch2", model="deit_small_patch16_224") == preset("sch2", 12, 6)
    assert placement("none", model="cait_xxs24_224") == preset("none", 24, 4)
    assert placement("31", model="deit_tiny_patch16_224", depth=2).masks == ((0, 1), (0,))
    saved = preset("sch1", 4, 3).save(tmp_path / "sch2")  # a file of a preset's name is the file
    assert placement(str(saved), model="deit_tiny_patch16_224", depth=4) == preset("sch1", 4, 3)


def test_a_spec_file_is_held_to_the_models_size_and_gives_a_mait_model_its_depth(tmp_path):
    from maitsearch.training.full import placement_for_model

    searched = preset("sch2", 4, 3).save(tmp_path / "best.yaml")
    spec, config = placement_for_model(str(searched), TrainConfig(model="mait_xtiny_patch16_224"))
    assert spec == preset("sch2", 4, 3) and config.depth == 4  # mait_* names fix no depth: the spec's
    with pytest.raises(ConfigError, match=r"best.yaml: 4 layers x 3 heads, but deit_tiny_patch16_224 has 12 x 3; "
                                          r"--depth 4 builds it at the spec's depth$"):
        placement_for_model(str(searched), TrainConfig(model="deit_tiny_patch16_224"))
    with pytest.raises(ConfigError, match=r"but mait_small_patch16_224 has 12 x 6; it needs a model with 3 heads"):
        placement_for_model(str(searched), TrainConfig(model="mait_small_patch16_224"))


def test_a_runs_answer_trains_into_a_folder_named_by_its_run(tmp_path):
    from maitsearch.cli.train import default_out

    run = tmp_path / "als-digits-l4h3-c7e0c6"
    run.mkdir()
    (run / "search.yaml").write_text("strategy: als\n")
    assert default_out("mait_tiny_patch16_224", run / "best.yaml") == \
        Path("results/train/mait_tiny_patch16_224-als-digits-l4h3-c7e0c6-best")
    assert default_out("deit_tiny_patch16_224", tmp_path / "mine.yaml") == \
        Path("results/train/deit_tiny_patch16_224-mine")
    assert default_out("deit_tiny_patch16_224", "sch2") == Path("results/train/deit_tiny_patch16_224-sch2")


def test_a_model_that_cannot_be_built_on_the_meta_device_is_read_on_the_cpu(monkeypatch):
    """Older timm drew its drop-path rates with ``.item()``, which a meta tensor refuses."""
    import timm.models.vision_transformer as vit

    from maitsearch.training.full import placement_for_model

    monkeypatch.setattr(vit, "calculate_drop_path_rates",
                        lambda rate, depth, *args, **kwargs: [x.item() for x in torch.linspace(0, rate, depth)])
    config = TrainConfig(model="deit_tiny_patch16_224", depth=4)
    assert placement_for_model("sch2", config) == (preset("sch2", 4, 3), config)
