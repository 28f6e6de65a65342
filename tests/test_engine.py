"""The proxy engine: it learns, it is deterministic, and it stops cleanly on NaN or pruning."""

import math

import pytest
import torch

from maitsearch.data import load_data
from maitsearch.config import ProxyConfig
from maitsearch.events import EpochDone, MeasuringStarted, StepDone, TrainingStarted
from maitsearch.training import Pruned, fit
from maitsearch.training.loop import epoch_seed
from maitsearch.spec import MaskSpec, preset

TINY = ProxyConfig(layers=2, heads=3, width=48, data="digits", image_size=16, patch_size=2, epochs=4, batch_size=32,
                   lr=2e-3, warmup_epochs=0.5, eval_every=1, shift_augment=0)  # centred digits need no shifts


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=16)


@pytest.mark.slow
def test_tiny_proxy_beats_chance_and_is_deterministic(digits, capsys):
    first = fit(preset("sch1", 2, 3), TINY, digits)
    second = fit(preset("sch1", 2, 3), TINY, digits)
    assert first.status == "complete" and first.epochs == 4
    assert first.val_top1 > 0.5 and first.test_top1 > 0.5, "chance is 0.1"
    strip = lambda rows: [{k: v for k, v in row.items() if k != "train_images_per_s"} for row in rows]  # noqa: E731
    assert strip(first.history) == strip(second.history)
    assert (first.val_top1, first.test_top1, first.als) == (second.val_top1, second.test_top1, second.als)
    assert capsys.readouterr().out == "", "library code prints nothing"


@pytest.mark.slow
def test_als_of_local_heads_is_one(digits):
    result = fit(preset("sch1", 2, 3, semantics="local"), TINY.replace(epochs=1), digits)
    assert [row[0] for row in result.als] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert all(0 < a < 1 for row in result.als for a in row[1:])


class PoisonedDigits:
    """Digits whose second epoch carries a NaN image in its third batch."""

    def __init__(self, data, seed):
        self.data, self.seed = data, seed

    def __getattr__(self, name):
        return getattr(self.data, name)

    def batches(self, split, batch_size, *, shuffle=False, seed=0, device="cpu"):
        for index, (x, y) in enumerate(self.data.batches(split, batch_size, shuffle=shuffle, seed=seed,
                                                         device=device)):
            if shuffle and seed == epoch_seed(self.seed, 1) and index == 2:
                x = x.clone()
                x[0, 0, 0, 0] = float("nan")
            yield x, y


def test_nan_loss_stops_the_trial_at_its_step(digits):
    result = fit(preset("none", 2, 3), TINY, PoisonedDigits(digits, TINY.seed))
    steps_per_epoch = math.ceil(digits.size("train") / TINY.batch_size)
    assert result.status == "nan_loss"
    assert result.steps == steps_per_epoch + 3
    assert f"at step {steps_per_epoch + 3}" in result.reason
    assert result.epochs == 1 and result.test_top1 is None


@pytest.mark.slow
def test_on_epoch_can_prune(digits):
    def prune_after_second(epoch, metrics):
        assert 0 <= metrics["val_top1"] <= 1
        if epoch == 1:
            raise Pruned("val top-1 below the median")

    result = fit(preset("none", 2, 3), TINY, digits, on_epoch=prune_after_second)
    assert result.status == "pruned" and result.epochs == 2 and result.reason == "val top-1 below the median"
    assert result.als is not None and len(result.history) == 2


@pytest.mark.slow
def test_progress_events(digits):
    events = []
    fit(preset("none", 2, 3), TINY.replace(epochs=1), digits, on_event=events.append)
    kinds = [type(event) for event in events]
    steps = math.ceil(digits.size("train") / TINY.batch_size)
    assert kinds[0] is TrainingStarted and kinds.count(StepDone) == steps and kinds.count(EpochDone) == 1
    assert kinds[-1] is MeasuringStarted
    assert events[0].steps_per_epoch == steps
    assert [e.step for e in events if isinstance(e, StepDone)] == list(range(1, steps + 1))


@pytest.mark.slow
def test_keep_model_returns_the_trained_model(digits):
    result = fit(preset("sch2", 2, 3), TINY.replace(epochs=1), digits, keep_model=True)
    assert isinstance(result.model, torch.nn.Module)
    assert result.model.mask_spec.counts() == preset("sch2", 2, 3).counts()
    assert "model" not in result.to_dict()


def test_spec_must_fit_the_proxy(digits):
    with pytest.raises(ValueError, match="spec is 3x3 but the proxy is 2x3"):
        fit(preset("none", 3, 3), TINY, digits)


@pytest.mark.slow
def test_eval_every_skips_validation_but_always_measures_the_end(digits):
    seen = []
    result = fit(preset("none", 2, 3), TINY.replace(epochs=5, eval_every=2), digits,
                 on_epoch=lambda epoch, metrics: seen.append(epoch))
    assert seen == [1, 3, 4], "validated after epochs 2, 4 and the last"
    assert [row["val_top1"] is None for row in result.history] == [True, False, True, False, False]
    assert result.val_top1 == result.history[-1]["val_top1"]


def test_soft_alphas_get_their_own_optimizer_group(digits):
    """alpha_lr_scale multiplies the alphas' learning rate through the schedule, without weight
    decay; a model with no soft head gets timm's own optimizer, unchanged."""
    from maitsearch.training import build_optimizer, build_proxy_model

    soft = MaskSpec(layers=2, heads=3, masks=[[0], []], soft=[[0.0, 0.5, 1.0], [0.5, 0.5, 1.0]])
    model = build_proxy_model(soft, TINY, digits)
    optimizer, scheduler = build_optimizer(model, lr=1e-3, weight_decay=0.05, min_lr=0.0, warmup_epochs=0,
                                           epochs=1, steps_per_epoch=10, alpha_lr_scale=30.0,
                                           alpha_weight_decay=0.01)
    logits = {id(p) for name, p in model.named_parameters() if name.endswith("soft_logit")}
    (alpha_group,) = [g for g in optimizer.param_groups if {id(p) for p in g["params"]} & logits]
    assert {id(p) for p in alpha_group["params"]} == logits and len(logits) == 2
    assert alpha_group["weight_decay"] == 0.01
    scheduler.step_update(5)
    others = [g["lr"] for g in optimizer.param_groups if g is not alpha_group]
    assert alpha_group["lr"] == pytest.approx(30 * others[0]) and len(set(others)) == 1
    plain = build_proxy_model(preset("sch1", 2, 3), TINY, digits)
    groups = build_optimizer(plain, lr=1e-3, weight_decay=0.05, min_lr=0.0, warmup_epochs=0, epochs=1,
                             steps_per_epoch=10)[0].param_groups
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.05] and all("lr_scale" not in g for g in groups)


@pytest.mark.slow
def test_alphas_learn_at_their_own_rate_and_their_history_is_kept(digits):
    spec = MaskSpec(layers=2, heads=3, masks=[[], []], soft=[[0.5] * 3, [0.5] * 3])
    slow = fit(spec, TINY.replace(epochs=2, alpha_lr_scale=1.0), digits)
    fast = fit(spec, TINY.replace(epochs=2, alpha_lr_scale=30.0, eval_every=2), digits)  # history without validation
    moved = lambda result: max(abs(a - 0.5) for row in result.alphas for a in row)  # noqa: E731
    assert moved(fast) > 5 * moved(slow)
    assert sorted(fast.alpha_history) == [0, 1] and fast.alpha_history[1] == fast.alphas
    assert fast.als_uniform == pytest.approx(484 / 4096)  # 16 / 2 = an 8x8 grid, 3x3 windows


@pytest.mark.slow
def test_average_pool_proxy_has_no_class_token_and_masks_every_patch(digits):
    result = fit(preset("sch1", 2, 3, semantics="local"), TINY.replace(epochs=1, pool="avg"), digits,
                 keep_model=True)
    assert result.model.cls_token is None and result.model.num_prefix_tokens == 0
    assert result.model.blocks[0].attn.num_tokens == 64, "an 8x8 grid and no prefix token"
    assert [row[0] for row in result.als] == pytest.approx([1.0, 1.0], abs=1e-6)


class _ReadsItsAnswer(torch.nn.Module):
    """Predicts the class written in an image's first pixel: a model whose answers are known."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), self.classes).float()


def test_evaluate_counts_each_part_by_hand():
    from maitsearch.training.loop import evaluate

    labels = torch.tensor([0, 1, 2, 10, 11, 10])
    answers = torch.tensor([0, 1, 5, 10, 10, 10])  # part a: 2 of 3 right; part b: 2 of 3
    images = answers.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    batches = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    out = evaluate(_ReadsItsAnswer(12), batches, parts={"a": (0, 10), "b": (10, 12)})
    assert out["top1"] == pytest.approx(4 / 6)
    assert out["top1_by_part"] == pytest.approx({"a": 2 / 3, "b": 2 / 3})
    assert "top1_by_part" not in evaluate(_ReadsItsAnswer(12), batches)


@pytest.mark.slow
def test_a_mixed_task_reports_each_part_and_the_parts_make_the_whole():
    from maitsearch.runs import TrialRecord
    from maitsearch.runs.report import parts_section
    from maitsearch.search.aggregate import aggregate
    from maitsearch.search.base import Proposal

    data = load_data("digits-shift-copy", image_size=24)
    assert data.label_parts() == {"digits-shift-3": (0, 10), "digits-copy-3": (10, 12)}
    assert load_data("digits", image_size=16).label_parts() == {}
    config = TINY.replace(layers=1, data="digits-shift-copy", image_size=24, patch_size=3, epochs=1, pool="avg")
    result = fit(preset("sch1", 1, 3), config, data)
    val = data.splits["val"][1]
    sizes = {"digits-shift-3": int((val < 10).sum()), "digits-copy-3": int((val >= 10).sum())}
    whole = sum(result.val_top1_by_part[name] * size for name, size in sizes.items()) / len(val)
    assert whole == pytest.approx(result.val_top1)
    record = aggregate(0, Proposal(preset("sch1", 1, 3), "sch1"), [result], [0])
    assert TrialRecord.from_spec(record.to_spec("r", "presets", "d")).val_top1_by_part == record.val_top1_by_part
    table = parts_section([record])
    assert table[2] == "| trial | step | placement | digits-shift-3 (%) | digits-copy-3 (%) |"
    assert f"{result.val_top1_by_part['digits-copy-3'] * 100:.2f}" in table[4]


def test_attention_pooled_proxy_has_no_class_token_and_reads_the_patches_once(digits):
    result = fit(preset("none", 2, 3), TINY.replace(epochs=1, pool="map"), digits, keep_model=True)
    model = result.model
    assert model.cls_token is None and model.num_prefix_tokens == 0
    assert type(model.attn_pool).__name__ == "AttentionPoolLatent" and model.attn_pool.latent_len == 1
    assert result.status == "complete" and len(result.als) == 2, "ALS is measured in the blocks only"
