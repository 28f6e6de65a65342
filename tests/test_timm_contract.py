"""The contract timm users rely on, checked for every registered mait_* model: the pretrained
cfg, a backward pass at the cfg's input size, features_only, forward_intermediates, FX tracing,
TorchScript and torch.compile. Written for this repository (timm's own suite runs the same
kinds of checks; docs/DESIGN.md, section 5). Models are built at depth 2: the checks are about the architecture,
which depth does not change."""

import pytest
import timm
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import maitsearch  # noqa: F401  (registers mait_*)
from maitsearch.model import MaskedAttention
from maitsearch.spec import MaskSpec, preset

NAMES = ["mait_xtiny_patch16_224", "mait_tiny_patch16_224", "mait_xsmall_patch16_224", "mait_small_patch16_224"]
WIDTHS = {"mait_xtiny_patch16_224": 144, "mait_tiny_patch16_224": 192, "mait_xsmall_patch16_224": 288,
          "mait_small_patch16_224": 384}


def make(name, **kwargs):
    return timm.create_model(name, depth=2, **kwargs)


def cfg_input(model):
    return torch.randn(2, *model.pretrained_cfg["input_size"])


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_cfg(name):
    model = make(name)
    cfg = model.pretrained_cfg
    assert cfg["tag"] == "untrained" and cfg["input_size"] == (3, 224, 224) and cfg["fixed_input_size"] is True
    assert cfg["mean"] == timm.data.IMAGENET_DEFAULT_MEAN and cfg["std"] == timm.data.IMAGENET_DEFAULT_STD
    assert 0 < cfg["crop_pct"] <= 1 and cfg["interpolation"] == "bicubic"
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    assert name + ".untrained" in timm.list_models("mait_*", pretrained=False, include_tags=True)
    assert model.num_features == model.head_hidden_size == WIDTHS[name]
    assert model.mask_spec == preset("sch1", 2, model.blocks[0].attn.num_heads).with_meta(preset="sch1")


def heads_of(name):
    return 6 if name == "mait_small_patch16_224" else 3


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    """At the cfg's input size, with a hard and a soft head, every parameter (the soft
    alpha's logit included) gets a gradient."""
    heads = heads_of(name)
    spec = MaskSpec(layers=2, heads=heads, masks=[[0], []],
                    soft=[[0.0, 0.5] + [1.0] * (heads - 2), [1.0] * heads])
    model = make(name, num_classes=7, mask_spec=spec).train()
    out = model(cfg_input(model))
    out.mean().backward()
    assert out.shape == (2, 7)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", NAMES)
def test_classifier_reset_and_pre_logits(name):
    model = make(name).eval()
    x = cfg_input(model)
    features = model.forward_features(x)
    assert features.shape == (2, 197, model.num_features)
    pre = model.forward_head(features, pre_logits=True)
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == pre.shape == (2, model.head_hidden_size)
    assert make(name, num_classes=0)(x).shape == (2, model.num_features)


def test_features_only_gives_nchw_maps_of_the_grid():
    model = timm.create_model("mait_xtiny_patch16_224", depth=3, features_only=True, out_indices=(0, 2)).eval()
    maps = model(torch.randn(1, 3, 224, 224))
    assert model.feature_info.channels() == [144, 144] and model.feature_info.reduction() == [16, 16]
    assert [m.shape for m in maps] == [(1, 144, 14, 14)] * 2
    assert isinstance(model.model.blocks[0].attn, MaskedAttention), "the masks survive the feature wrapper"


def test_forward_intermediates_end_where_forward_features_does():
    model = make("mait_tiny_patch16_224").eval()
    x = torch.randn(1, 3, 224, 224)
    final, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
    assert [t.shape for t in intermediates] == [(1, 192, 14, 14)] * 2
    assert torch.allclose(final, model.forward_features(x))


def fx_model(model):
    kwargs = dict(leaf_modules=timm.models.get_notrace_modules(),
                  autowrap_functions=timm.models.get_notrace_functions(), param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=kwargs)
    return create_feature_extractor(model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]],
                                    tracer_kwargs=kwargs)


def test_fx_traces_around_the_masked_attention():
    model = make("mait_tiny_patch16_224", num_classes=5).eval()
    x = torch.randn(2, 3, 224, 224)
    traced = fx_model(model)
    with torch.no_grad():
        assert torch.equal(next(iter(traced(x).values())), model(x))
    traced.train()
    next(iter(traced(x).values())).mean().backward()
    assert all(p.grad is not None for p in traced.parameters())


SPECS = {
    "hard": MaskSpec(layers=2, heads=3, masks=[[0], [0, 1, 2]]),
    "soft, permuted heads": MaskSpec(layers=2, heads=3, masks=[[2], []], soft=[[0.3, 0.8, 0.0], [1.0, 0.4, 1.0]]),
    "local": MaskSpec(layers=2, heads=3, masks=[[1], [0]], semantics="local"),
    "random keys": preset("random", 2, 3, seed=3),
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_torchscript_runs_the_same_function(spec):
    model = make("mait_tiny_patch16_224", mask_spec=spec).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(model)(x), model(x), atol=1e-5)
        assert torch.allclose(next(iter(torch.jit.script(fx_model(model))(x).values())), model(x), atol=1e-5)


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_torch_compile_traces_a_training_step_whole_and_matches_eager(spec):
    """``train --compile`` on CUDA: dynamo must trace the masked attention with no graph break
    (fullgraph), and the compiled step must compute eager's loss and gradients. The aot_eager
    backend checks exactly that tracing on the CPU without a C++ compiler's minutes."""
    torch.compiler.reset()  # each case compiles fresh, never near dynamo's recompile limit
    torch.manual_seed(0)
    model = timm.create_model("mait_tiny_patch16_224", depth=2, img_size=32, patch_size=4, num_classes=10,
                              mask_spec=spec)
    x = torch.randn(4, 3, 32, 32)
    eager = model(x).square().mean()
    eager.backward()
    eager_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x).square().mean()
    compiled.backward()
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=0)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, eager_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_torch_compile_traces_the_window_kernel_of_eval_mode_whole():
    torch.compiler.reset()
    model = timm.create_model("mait_tiny_patch16_224", depth=2, img_size=96, patch_size=4, num_classes=10,
                              mask_spec="all").eval()
    assert model.blocks[0].attn.inference_kernels["cpu"] == "band", "577 tokens: eval computes only the window"
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="aot_eager", fullgraph=True)(x), model(x),
                                   atol=1e-6, rtol=0)


def test_img_size_builds_the_mask_for_its_grid():
    model = timm.create_model("mait_tiny_patch16_224", depth=2, img_size=128, mask_spec="sch2")
    attn = model.blocks[0].attn
    assert attn.grid_size == (8, 8) and attn.num_tokens == 65 and attn.hard_heads == (0, 1)
    assert model(torch.randn(1, 3, 128, 128)).shape == (1, 1000)


def test_deit_weights_load_from_a_local_file_through_timm(tmp_path):
    """pretrained=True with pretrained_cfg_overlay=dict(file=...): timm's own loading, no network;
    the masked attention holds DeiT's weights exactly."""
    deit = timm.create_model("deit_tiny_patch16_224", depth=2)
    path = tmp_path / "deit_tiny.pth"
    torch.save(deit.state_dict(), path)
    mait = timm.create_model("mait_tiny_patch16_224", depth=2, pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(path)))
    loaded, original = mait.state_dict(), deit.state_dict()
    assert loaded.keys() == original.keys()
    assert all(torch.equal(loaded[k], original[k]) for k in original)
    resized = timm.create_model("mait_tiny_patch16_224", depth=2, img_size=128, pretrained=True,
                                pretrained_cfg_overlay=dict(file=str(path)))
    assert resized.pos_embed.shape == (1, 65, 192), "timm's filter resamples the position embedding"
