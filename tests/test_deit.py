"""maitsearch train --recipe deit: timm's parts, gradient accumulation, the PIL adapter, train -c,
and torchrun (gloo, CPU): one writer, equal weights on every rank, an exact resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.config import resolve_config_path
from maitsearch.data.datasets import ImageDataset
from maitsearch.errors import ConfigError
from maitsearch.spec import preset
from maitsearch.training.checkpoints import load_checkpoint, weights_digest
from maitsearch.training.deit import build_trainer, train_step
from maitsearch.training.recipes import (TrainConfig, build_mixup, build_train_sampler, build_transforms,
                                         check_train_config, read_train_config)
from maitsearch.training.timm_compat import posterize_keeping_zero_bits

TINY = dict(model="mait_tiny_patch16_224", depth=2, image_size=32, device="cpu")
runner = CliRunner()


def test_the_recipe_is_made_of_timm_parts():
    from timm.data import Mixup
    from timm.data.auto_augment import RandAugment
    from timm.data.distributed_sampler import RepeatAugSampler
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import RandomResizedCropAndInterpolation
    from timm.loss import SoftTargetCrossEntropy
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    config = TrainConfig(recipe="deit", model_ema=True, batch_size=64, grad_accum_steps=2, **TINY)
    train_transform, _ = build_transforms(config, 32, (0.5,), (0.5,))
    parts = {type(t) for t in train_transform.transforms}
    assert {RandomResizedCropAndInterpolation, RandAugment, RandomErasing} <= parts
    (erasing,) = [t for t in train_transform.transforms if isinstance(t, RandomErasing)]
    (crop,) = [t for t in train_transform.transforms if isinstance(t, RandomResizedCropAndInterpolation)]
    assert erasing.probability == 0.25 and crop.interpolation.name == "BICUBIC"
    mixup = build_mixup(config, 10)
    assert isinstance(mixup, Mixup) and (mixup.mixup_alpha, mixup.cutmix_alpha, mixup.label_smoothing) == (0.8, 1.0, 0.1)
    assert isinstance(build_train_sampler(config, range(100), 1, 2, None), RepeatAugSampler)

    # DeiT's rule by hand: 64 per process x 2 processes x 2 micro-batches = 256 images, 5e-4 x 256 / 512
    assert config.global_batch(2) == 256 and config.learning_rate(2) == pytest.approx(2.5e-4)
    trainer = build_trainer(config, torch.nn.Linear(4, 10), torch.device("cpu"), 10, updates_per_epoch=4)
    assert isinstance(trainer.loss, SoftTargetCrossEntropy) and isinstance(trainer.ema, ModelEmaV3)
    assert isinstance(trainer.scheduler, CosineLRScheduler)
    assert type(trainer.optimizer).__name__ == "AdamW" and trainer.optimizer.defaults["lr"] == pytest.approx(1.25e-4)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-6), "warmup starts at DeiT's 1e-6"
    # by hand, 10 epochs: linear warmup over 5, then timm's cosine over all 10 (DeiT's warmup_prefix False)
    trainer.scheduler.step(4)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-6 + 4 * (1.25e-4 - 1e-6) / 5)
    trainer.scheduler.step(5)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5 + 0.5 * (1.25e-4 - 1e-5))


def test_accumulated_micro_batches_make_the_update_of_their_whole_batch():
    """Two micro-batches of 8 with grad_accum_steps 2 against one plain AdamW step on all 16."""
    torch.manual_seed(0)
    images, labels = torch.randn(16, 6), torch.randint(0, 3, (16,))
    reference = torch.nn.Linear(6, 3)
    accumulated = torch.nn.Linear(6, 3)
    accumulated.load_state_dict(reference.state_dict())
    config = TrainConfig(recipe="deit", mixup=0, cutmix=0, label_smoothing=0, sched="none", grad_accum_steps=2,
                         weight_decay=0.0, lr=0.1, **TINY)
    trainer = build_trainer(config, accumulated, torch.device("cpu"), 3, updates_per_epoch=1)
    train_step(trainer, images[:8], labels[:8], micro=0, group=2)
    assert trainer.updates == 0, "no update before the group's last micro-batch"
    train_step(trainer, images[8:], labels[8:], micro=1, group=2)
    assert trainer.updates == 1
    optimizer = torch.optim.AdamW(reference.parameters(), lr=0.1, weight_decay=0.0)
    torch.nn.functional.cross_entropy(reference(images), labels).backward()
    optimizer.step()
    for a, b in zip(reference.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b)


def test_image_dataset_shows_the_tensors_as_pil_images(digits):
    dataset = ImageDataset(digits, "val")
    image, label = dataset[5]
    pixels, labels = digits.splits["val"]
    assert image.mode == "L" and image.size == (16, 16) and label == int(labels[5])
    assert image.tobytes() == pixels[5, 0].numpy().tobytes()
    assert len(dataset) == len(labels)


def test_posterize_with_zero_bits_is_black_as_timm_means():
    from PIL import Image, ImageOps

    image = Image.frombytes("RGB", (4, 4), bytes(range(48)))
    assert posterize_keeping_zero_bits(image, 0).tobytes() == bytes(48)
    assert posterize_keeping_zero_bits(image, 3).tobytes() == ImageOps.posterize(image, 3).tobytes()


@pytest.mark.parametrize("changes,message", [
    ({"recipe": "nope"}, "--recipe: unknown 'nope'; choose one of light, deit"),
    ({"mixup": 0.5}, "--mixup: a setting of the deit recipe, which this run does not use; add --recipe deit"),
    ({"recipe": "deit", "batch_size": 33}, "--batch-size 33: timm's Mixup pairs the images of a batch"),
    ({"recipe": "deit", "opt": "nope"}, "--opt nope: not a timm optimizer"),
    ({"recipe": "deit", "sched": "nope"}, "--sched nope: timm's create_scheduler_v2 refuses it"),
    ({"recipe": "deit", "sched": "plateau"}, "--sched plateau: its state is not in any checkpoint"),
    ({"recipe": "deit", "reprob": 1.5}, "--reprob 1.5: expected a probability in [0, 1]"),
    ({"recipe": "deit", "model_ema_decay": 1.0}, "--model-ema-decay 1.0: expected above 0 and below 1"),
    ({"label_smoothing": 1.0}, "--smoothing 1.0: expected at least 0 and below 1"),
    ({"drop_path": 2.0}, "--drop-path 2.0: expected at least 0 and below 1"),
    ({"warmup_epochs": -1.0}, "--warmup-epochs -1.0: expected at least 0"),
    ({"grad_clip": -1.0}, "--grad-clip -1.0: expected a gradient norm"),
    ({"lr": float("nan")}, "--lr nan: expected above 0"),
    ({"image_size": 0}, "--img-size 0: expected at least 1"),
    ({"depth": 0}, "--depth 0: expected at least 1"),
    ({"recipe": "deit", "auto_augment": "nope"}, "--aa nope / --remode pixel: timm's create_transform refuses them"),
])
def test_bad_recipe_settings_are_one_line(changes, message):
    with pytest.raises(ConfigError) as err:
        check_train_config(TrainConfig(**{**TINY, **changes}))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_an_unknown_recipe_is_one_line_and_writes_nothing(tmp_path):
    spec = preset("sch1", 12, 3).save(tmp_path / "spec.yaml")
    result = runner.invoke(app, ["train", "--recipe", "nope", "--spec", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stderr.splitlines() == ["error: --recipe: unknown 'nope'; choose one of light, deit"]
    assert not (tmp_path / "out").exists()


def test_train_reads_its_own_config_back_and_flags_override_it(tmp_path):
    spec = preset("sch1", 2, 3).save(tmp_path / "spec.yaml")
    first = tmp_path / "first"
    result = runner.invoke(app, ["train", "--spec", str(spec), "--out", str(first), "--model", TINY["model"],
                                 "--depth", "2", "--img-size", "32", "--epochs", "1", "-b", "256", "--device", "cpu",
                                 "--lr", "0.001"])
    assert result.exit_code == 0, result.output
    assert "light recipe in 1 process (cpu): batch 256; lr 0.001 (--lr)" in result.output
    saved = read_train_config(first / "config.yaml")
    assert TrainConfig(**saved) == TrainConfig(**{**TINY, "epochs": 1, "batch_size": 256, "lr": 0.001})
    again = tmp_path / "again"  # the spec beside the file, the file's settings, one flag on top
    result = runner.invoke(app, ["train", "-c", str(first / "config.yaml"), "--out", str(again), "-b", "128",
                                 "--compile"])  # kept for CUDA, where it compiles; the CPU trains eagerly
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((again / "config.yaml").read_text()) == {**saved, "batch_size": 128, "compile": True}
    assert (again / "spec.yaml").read_text() == (first / "spec.yaml").read_text()

    (tmp_path / "bad.yaml").write_text("epochs: 2\nmixpu: 0.5\n")
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "bad.yaml"), "--spec", str(spec)])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: {tmp_path / 'bad.yaml'}: unknown setting(s) mixpu (did you mean mixup?); see maitsearch train --help"]
    (tmp_path / "bad.yaml").write_text("epochs: ten\n")
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "bad.yaml"), "--spec", str(spec)])
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'bad.yaml'}: epochs: expected a whole number, got 'ten'"]
    result = runner.invoke(app, ["train", "-c", str(spec)])  # the files a user has at hand, in the wrong place
    assert result.stderr.splitlines() == [f"error: -c {spec}: a mask spec, not a training config; pass it as --spec {spec}"]
    search = resolve_config_path("quick")
    result = runner.invoke(app, ["train", "-c", str(search), "--spec", str(spec)])
    assert result.stderr.splitlines()[0].startswith(f"error: -c {search}: a search config (maitsearch run --config)")


def test_a_resume_with_another_process_count_is_one_line(tmp_path):
    """A checkpoint four processes wrote, resumed by one: refused before anything trains."""
    spec = preset("sch1", 2, 3).save(tmp_path / "spec.yaml")
    args = ["train", "--spec", str(spec), "--out", str(tmp_path / "out"), "--recipe", "deit", "--model",
            TINY["model"], "--depth", "2", "--img-size", "32", "--epochs", "2", "-b", "256", "--device", "cpu"]
    state = {"model": {}, "optimizer": {}, "epoch": 1, "updates": 4, "world_size": 4, "recipe": "deit",
             "config": TrainConfig(recipe="deit", epochs=2, batch_size=256, **TINY).to_dict(),
             "spec": preset("sch1", 2, 3).to_yaml()}
    (tmp_path / "out").mkdir()
    torch.save(state, tmp_path / "out" / "checkpoint.pt")
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: --resume: {tmp_path / 'out' / 'checkpoint.pt'} was written by 4 process(es) and this run has 1; "
        "the global batch, the lr and the data shards follow the count, so resume with 4 (torchrun "
        "--nproc_per_node x --nnodes), or start another --out"]


# ---- torchrun ------------------------------------------------------------------------------
DEIT_ARGS = ["--recipe", "deit", "--model", "mait_tiny_patch16_224", "--depth", "2", "--img-size", "32",
             "--epochs", "2", "-b", "64", "--device", "cpu"]


def torchrun(processes: int, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "maitsearch", "train", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # one process group: a kill reaches every rank


def signal_ranks(launcher: subprocess.Popen, signum: int) -> None:
    """``signum`` to every rank torchrun started: each runs in a session of its own, out of reach
    of the launcher's process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == launcher.pid:  # the parent's pid
            try:
                os.killpg(int(stat.parent.name), signum)
            except ProcessLookupError:
                pass


def lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_torchrun_two_processes_one_writer_equal_weights_and_an_exact_resume(tmp_path):
    spec = preset("sch2", 2, 3).save(tmp_path / "spec.yaml")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    uninterrupted = torchrun(2, "--spec", str(spec), "--out", str(whole), *DEIT_ARGS)
    out, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err[-3000:]
    assert out.count("deit recipe in 2 processes (gloo, cpu): global batch 128 = 64 per process x 2 processes x "
                     "1 micro-batch; lr 0.0005 x 128 / 512 = 0.000125") == 1, "rank 0 alone prints"
    assert sorted(p.name for p in whole.iterdir()) == ["checkpoint.pt", "config.json", "config.yaml", "metrics.jsonl",
                                                      "model.safetensors", "spec.yaml"]
    assert lines_in(whole / "metrics.jsonl") == 2
    final = load_checkpoint(whole / "checkpoint.pt")
    assert final["world_size"] == 2 and final["epoch"] == 2
    # each rank digested its own weights after the last epoch: rank 1's equal rank 0's, which are these
    assert final["rank_digests"] == [weights_digest(final["model"])] * 2

    victim = torchrun(2, "--spec", str(spec), "--out", str(broken), *DEIT_ARGS)
    deadline = time.time() + 300
    # in slices of 50 ms, looking between them with every rank stopped: the kill lands in the
    # second epoch however busy the machine is
    while lines_in(broken / "metrics.jsonl") < 1 and victim.poll() is None and time.time() < deadline:
        signal_ranks(victim, signal.SIGCONT)
        time.sleep(0.05)
        signal_ranks(victim, signal.SIGSTOP)
    signal_ranks(victim, signal.SIGKILL)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert load_checkpoint(broken / "checkpoint.pt")["epoch"] == 1, "the kill landed in the second epoch"

    # one process resuming what two started: refused in one line, before anything trains
    mismatched = runner.invoke(app, ["train", "--spec", str(spec), "--out", str(broken), "--resume", *DEIT_ARGS])
    assert mismatched.exit_code == 2 and mismatched.stderr.splitlines() == [
        f"error: --resume: {broken / 'checkpoint.pt'} was written by 2 process(es) and this run has 1; the global "
        "batch, the lr and the data shards follow the count, so resume with 2 (torchrun --nproc_per_node x --nnodes), "
        "or start another --out"]

    resumed = torchrun(2, "--spec", str(spec), "--out", str(broken), "--resume", *DEIT_ARGS)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    again = load_checkpoint(broken / "checkpoint.pt")
    for key, tensor in final["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
    assert [untimed(row) for row in pd.read_json(broken / "metrics.jsonl", lines=True).to_dict("records")] == \
        [untimed(row) for row in pd.read_json(whole / "metrics.jsonl", lines=True).to_dict("records")]


def untimed(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "train_images_per_s"}
