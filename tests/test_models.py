"""apply_mask_spec on real timm ViTs, the registered mait_* models, and measure_als."""

import pytest
import timm
import torch

import maitsearch
from maitsearch import MaskSpec, apply_mask_spec, measure_als
from maitsearch.model import MaskedAttention
from maitsearch.spec import preset
from maitsearch.model.locality import window_sizes


@pytest.fixture(scope="module")
def deit_tiny():
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", num_classes=10).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 224, 224)


def test_registered_models_follow_table_1():
    for name, (width, heads) in {"mait_xtiny_patch16_224": (144, 3), "mait_tiny_patch16_224": (192, 3),
                                 "mait_xsmall_patch16_224": (288, 3), "mait_small_patch16_224": (384, 6)}.items():
        assert name in timm.list_models("mait_*")
        model = timm.create_model(name, depth=2, num_classes=0)
        assert model.embed_dim == width and model.blocks[0].attn.num_heads == heads and len(model.blocks) == 2


def test_deit_state_dict_loads_and_none_spec_equals_timm(deit_tiny, images):
    mait = timm.create_model("mait_tiny_patch16_224", depth=12, num_classes=10, mask_spec="none").eval()
    mait.load_state_dict(deit_tiny.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(mait(images), deit_tiny(images), atol=1e-6, rtol=0)
    assert set(mait.state_dict()) == set(deit_tiny.state_dict())


def test_mait_takes_timms_shape_keywords_as_deit_does():
    """``patch_size`` (and the other shape keywords) override the size's own, as in timm's deit_*
    functions; the masks then fit the new grid, the same as a DeiT of that shape masked in place."""
    shape = dict(depth=2, img_size=32, patch_size=4, embed_dim=96, num_classes=10)
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", **shape).eval()
    mait = timm.create_model("mait_tiny_patch16_224", mask_spec="sch2@3x3", **shape).eval()
    mait.load_state_dict(deit.state_dict(), strict=True)
    assert mait.patch_embed.grid_size == (8, 8) and mait.blocks[0].attn.grid_size == (8, 8)
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(maitsearch.model.mait.MasksNotSavedWarning), torch.no_grad():
        reference = apply_mask_spec(deit, preset("sch2", 2, 3))(x)
        torch.testing.assert_close(mait(x), reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["sch1", "sch2", "all"])
def test_deit_weights_load_strictly_into_any_mait(deit_tiny, images, name):
    mait = timm.create_model("mait_tiny_patch16_224", num_classes=10, mask_spec=name).eval()
    mait.load_state_dict(deit_tiny.state_dict(), strict=True)
    with torch.no_grad():
        out = mait(images)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert not torch.allclose(out, deit_tiny(images)), "masks change the function"


def test_soft_mait_loads_deit_weights_and_keeps_its_alphas(deit_tiny):
    soft = MaskSpec(layers=12, heads=3, masks=[[]] * 12, soft=[[0.3, 0.5, 1.0]] * 12)
    mait = timm.create_model("mait_tiny_patch16_224", num_classes=10, mask_spec=soft)
    mait.load_state_dict(deit_tiny.state_dict(), strict=True)
    torch.testing.assert_close(mait.blocks[5].attn.alphas(), torch.tensor([0.3, 0.5, 1.0]))


def test_apply_keeps_loaded_weights_untouched(deit_tiny):
    model = timm.create_model("deit_tiny_patch16_224", num_classes=10)
    model.load_state_dict(deit_tiny.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qkv = model.blocks[3].attn.qkv
    apply_mask_spec(model, preset("sch2", 12, 3))
    assert model.blocks[3].attn.qkv is qkv
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_distilled_deit_has_two_prefix_tokens(images):
    model = timm.create_model("deit_tiny_distilled_patch16_224", num_classes=10).eval()
    apply_mask_spec(model, preset("sch1", 12, 3))
    attn = model.blocks[0].attn
    assert isinstance(attn, MaskedAttention)
    assert attn.num_prefix_tokens == 2 and attn.grid_size == (14, 14) and attn.num_tokens == 198
    assert attn.allowed[:2].all() and attn.allowed[:, :2].all()
    with torch.no_grad():
        assert model(images).shape == (2, 10)


def test_reapplying_replaces_the_spec(images):
    model = timm.create_model("mait_tiny_patch16_224", num_classes=10, mask_spec="all").eval()
    apply_mask_spec(model, "none")
    reference = timm.create_model("deit_tiny_patch16_224", num_classes=10).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images), atol=1e-6, rtol=0)
    assert model.mask_spec.num_masked == 0


def test_create_model_from_a_spec_file(tmp_path):
    path = preset("sch2", 24, 3).save(tmp_path / "best.yaml")
    model = timm.create_model("mait_tiny_patch16_224", depth=24, mask_spec=str(path))
    assert [block.attn.num_hard for block in model.blocks] == list(preset("sch2", 24, 3).counts())
    # the names fix no depth: a spec that names its layers gives it, a preset takes the usual 12
    assert len(timm.create_model("mait_tiny_patch16_224", mask_spec=str(path)).blocks) == 24
    assert len(timm.create_model("mait_tiny_patch16_224", mask_spec="sch2").blocks) == 12
    with pytest.raises(ValueError, match="spec has 24 layers but the model has 12 blocks"):
        timm.create_model("mait_tiny_patch16_224", depth=12, mask_spec=str(path))


def test_spec_that_does_not_fit_is_refused():
    model = timm.create_model("deit_tiny_patch16_224", num_classes=10)
    with pytest.raises(ValueError, match="spec has 24 layers but the model has 12 blocks"):
        apply_mask_spec(model, preset("sch1", 24, 3))
    with pytest.raises(ValueError, match="spec has 6 heads per layer but block 0 has 3"):
        apply_mask_spec(model, preset("sch1", 12, 6))
    with pytest.raises(TypeError, match="expected a timm VisionTransformer"):
        apply_mask_spec(torch.nn.Linear(2, 2), preset("sch1", 12, 3))
    with pytest.raises(RuntimeError, match="No pretrained weights exist"):  # timm's own answer, no download tried
        timm.create_model("mait_tiny_patch16_224", pretrained=True)


def small_vit(spec_name="none", semantics="paper"):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=48, depth=3,
                              num_heads=3, num_classes=10)
    return apply_mask_spec(model, preset(spec_name, 3, 3, semantics=semantics))


def test_als_of_uniform_attention_is_mean_window_share():
    """With zero queries every logit is 0, so every head (masked or not) attends uniformly and
    its ALS is the mean window size over the patch count."""
    model = small_vit("sch2")
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:48].zero_()
            block.attn.qkv.bias[:48].zero_()
    als = measure_als(model, torch.randn(4, 3, 32, 32))
    expected = window_sizes((8, 8), (3, 3)).double().mean().item() / 64
    assert als.shape == (3, 3)
    assert als == pytest.approx(expected, abs=1e-9)


def test_local_semantics_head_has_als_one():
    model = small_vit("sch1", semantics="local")
    als = measure_als(model, torch.randn(4, 3, 32, 32))
    assert als[:, 0] == pytest.approx(1.0, abs=1e-6)
    assert (als[:, 1:] < 0.9).all()


def test_measure_als_restores_mode_and_leaves_no_hooks():
    model = small_vit("sch1").train()
    measure_als(model, [(torch.randn(2, 3, 32, 32), torch.zeros(2))])
    assert model.training
    assert all(not block.attn._forward_pre_hooks for block in model.blocks)


def test_package_exports_each_public_name_from_its_layer():
    import importlib

    # written out here, not read from maitsearch._API: the table the lazy loader must agree with
    homes = {"MaskSpec": "maitsearch.spec", "load_spec": "maitsearch.spec", "ProxyConfig": "maitsearch.config",
             "SearchConfig": "maitsearch.config", "apply_mask_spec": "maitsearch.model.mait",
             "measure_als": "maitsearch.model.measure", "fit": "maitsearch.training.proxy",
             "run_search": "maitsearch.search.launch", "calibrate": "maitsearch.search.calibrate",
             "load_run": "maitsearch.runs.reading", "list_runs": "maitsearch.runs.reading"}
    assert sorted(maitsearch.__all__) == sorted(homes)
    for name, module in homes.items():
        assert getattr(maitsearch, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'train_everything'"):
        maitsearch.train_everything
