"""Masked CaiT: apply_mask_spec on timm's CaiT masks the patch self-attention layers after the
talking heads' pre-softmax mix, leaves the class-attention layers alone and keeps CaiT's state
dict (docs/DESIGN.md, section 5)."""

import warnings

import pytest
import timm
import torch
from timm.models.cait import ClassAttn, TalkingHeadAttn
from typer.testing import CliRunner

from maitsearch import apply_mask_spec, measure_als
from maitsearch.cli import app
from maitsearch.model import MaskedTalkingHeadAttn
from maitsearch.model.mait import MasksNotSavedWarning
from maitsearch.spec import MaskSpec, preset

from .reference import neighbours_by_hand, reference_talking_heads


def small_cait(**kwargs):
    """A CaiT at proxy size: 16x16 images, patch 2 (an 8x8 grid), 2 patch layers of 3 heads."""
    torch.manual_seed(0)
    return timm.create_model("cait_xxs24_224", img_size=16, patch_size=2, embed_dim=24, num_heads=3, depth=2,
                             depth_token_only=1, num_classes=10, **kwargs)


MIXES = {
    "paper, plain, soft": (["paper", "plain", "soft"], MaskSpec(layers=2, heads=3, masks=[[0], []],
                                                                 soft=[[0.0, 1.0, 0.3], [1.0, 1.0, 1.0]])),
    "local": (["local", "local", "plain"], MaskSpec(layers=2, heads=3, masks=[[0, 1], []], semantics="local")),
    "all soft": (["soft"] * 3, MaskSpec(layers=2, heads=3, masks=[[], []], soft=[[0.2, 0.5, 0.9], [1.0] * 3])),
}


@pytest.mark.parametrize("modes,spec", MIXES.values(), ids=MIXES.keys())
def test_masked_talking_heads_match_the_hand_written_reference(modes, spec):
    model = apply_mask_spec(small_cait(), spec)
    attn = model.blocks[0].attn
    x = torch.randn(2, 64, 24, requires_grad=True)
    alphas = {h: a for h, a in enumerate(spec.alphas()[0])}
    allowed = neighbours_by_hand((8, 8), (3, 3), prefix=0)
    ours = attn(x)
    x_ref = x.detach().clone().requires_grad_()
    alpha_tensor = {h: torch.sigmoid(attn.soft_logit[attn.soft_heads.index(h)]) for h in attn.soft_heads}
    reference = reference_talking_heads(attn, x_ref, modes, allowed, {**alphas, **alpha_tensor})
    assert torch.allclose(ours, reference, atol=1e-5)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)


def test_state_dict_stays_caits_and_class_attention_is_untouched():
    plain = small_cait()
    masked = apply_mask_spec(small_cait(), preset("sch2", 2, 3))
    assert plain.state_dict().keys() == masked.state_dict().keys()
    assert all(torch.equal(plain.state_dict()[k], masked.state_dict()[k]) for k in plain.state_dict())
    assert all(isinstance(b.attn, MaskedTalkingHeadAttn) for b in masked.blocks)
    assert all(type(b.attn) is ClassAttn for b in masked.blocks_token_only)
    x = torch.randn(2, 1, 16, 16).expand(2, 3, 16, 16)
    none = apply_mask_spec(small_cait(), "none")
    with torch.no_grad():
        assert torch.allclose(none(x), small_cait()(x), atol=1e-6), "no mask is CaiT"


def test_soft_cait_loads_cait_weights_and_als_reads_the_patch_layers():
    soft = apply_mask_spec(small_cait(), MaskSpec(layers=2, heads=3, masks=[[0], []], soft=[[0.0, 0.5, 1.0], [1.0] * 3]))
    soft.load_state_dict(small_cait().state_dict())  # CaiT's checkpoint has no alphas: they stay at 0.5
    assert soft.blocks[0].attn.alphas().tolist() == pytest.approx([0.0, 0.5, 1.0])
    local = apply_mask_spec(small_cait(), MaskSpec(layers=2, heads=3, masks=[[0], [0]], semantics="local"))
    als = measure_als(local, torch.randn(4, 3, 16, 16))
    assert als.shape == (2, 3) and als[:, 0] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert isinstance(small_cait().blocks[0].attn, TalkingHeadAttn)


@pytest.mark.slow
def test_one_epoch_of_masked_cait_through_maitsearch_train(tmp_path):
    """The user's path: a timm CaiT by name, a spec file, ``maitsearch train`` for one epoch. No
    warning that timm's config.json will not carry the masks: the folder keeps spec.yaml."""
    spec = tmp_path / "sch1.yaml"
    preset("sch1", 4, 4).save(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MasksNotSavedWarning)
        result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--model", "cait_xxs24_224", "--depth", "4",
                                          "--img-size", "64", "--data", "digits", "--epochs", "1",
                                          "--batch-size", "64", "--lr", "0.001", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "spec.yaml").exists()
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert "blocks.0.attn.proj_l.weight" in checkpoint["model"] and checkpoint["epoch"] == 1
    assert "val top-1" in result.stdout
