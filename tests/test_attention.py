"""MaskedAttention against the plain dense reference, forward and backward, on every kernel."""

import itertools

import pytest
import torch
from timm.layers import Attention

from maitsearch.model.attention import MaskedAttention
from maitsearch.model.measure import attention_probs
from maitsearch.model.locality import head_pattern_seed, random_matrix, token_matrix

from .reference import neighbours_by_hand, reference_block_attention

GRIDS = [(4, 4), (3, 5), (6, 4)]
WINDOWS = [(3, 3), (3, 5), (5, 5)]
# Per-head modes of a 4-head layer; one semantics per layer, as in a spec.
HEAD_MIXES = {
    "sch1": ("paper", "plain", "plain", "plain"),
    "hard+soft+plain": ("paper", "paper", "soft", "plain"),
    "non-canonical": ("plain", "soft", "paper", "plain"),
    "local+soft": ("local", "local", "plain", "soft"),
    "all-paper": ("paper",) * 4,
    "all-local": ("local",) * 4,
    "all-soft": ("soft",) * 4,
}
ALPHA_OF = {"plain": 1.0, "paper": 0.0, "local": 0.0}


def build(modes, grid, window, prefix, kernel, seed=0, pattern="window"):
    torch.manual_seed(seed)
    dim = 8 * len(modes)
    attn = Attention(dim, num_heads=len(modes), qkv_bias=True)
    soft_init = iter([0.3, 0.6, 0.8, 0.15])
    alphas = [ALPHA_OF[mode] if mode in ALPHA_OF else next(soft_init) for mode in modes]
    semantics = "local" if "local" in modes else "paper"
    masked = MaskedAttention.from_attention(attn, alphas, grid_size=grid, num_prefix_tokens=prefix, window=window,
                                            semantics=semantics, kernel=kernel, pattern=pattern, layer_index=3)
    x = torch.randn(2, prefix + grid[0] * grid[1], dim, requires_grad=True)
    return masked, x


def reference_for(masked, modes, x, allowed_per_head):
    alphas = {h: torch.sigmoid(masked.soft_logit[i]) for i, h in enumerate(masked.soft_heads)}
    return reference_block_attention(masked, x, modes, allowed_per_head, alphas)


def check_forward_backward(masked, modes, x, allowed_per_head, atol=1e-5):
    torch.manual_seed(1)
    params = [x, masked.qkv.weight, masked.qkv.bias, masked.proj.weight]
    if masked.soft_heads:
        params.append(masked.soft_logit)
    out = masked(x)
    expected = reference_for(masked, modes, x, allowed_per_head)
    torch.testing.assert_close(out, expected, atol=atol, rtol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), params)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), params)
    for name, got, want in zip(["x", "qkv.weight", "qkv.bias", "proj.weight", "soft_logit"], grads, expected_grads):
        torch.testing.assert_close(got, want, atol=atol, rtol=1e-5, msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.parametrize("mix", HEAD_MIXES)
@pytest.mark.parametrize("grid,window,prefix", [
    (grid, window, prefix) for grid, window, prefix in itertools.product(GRIDS, WINDOWS, (0, 1, 2))])
@pytest.mark.parametrize("kernel", ["dense", "local"])
def test_matches_dense_reference(kernel, grid, window, prefix, mix):
    modes = HEAD_MIXES[mix]
    masked, x = build(modes, grid, window, prefix, kernel)
    allowed = neighbours_by_hand(grid, window, prefix)
    check_forward_backward(masked, modes, x, [allowed] * len(modes))


@pytest.mark.parametrize("mix", HEAD_MIXES)
@pytest.mark.parametrize("grid,window,prefix", [((4, 4), (3, 3), 1), ((3, 5), (3, 5), 2), ((6, 4), (5, 5), 1)])
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_forward_matches_dense_reference_on_cpu(grid, window, prefix, mix):
    """FlexAttention runs eagerly (unfused) on CPU, forward only: the mask functions and the
    flex call are checked here; CUDA adds backward and speed."""
    modes = HEAD_MIXES[mix]
    masked, x = build(modes, grid, window, prefix, "flex")
    allowed = neighbours_by_hand(grid, window, prefix)
    with torch.no_grad():
        out = masked(x)
        expected = reference_for(masked, modes, x, [allowed] * len(modes))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_compiled_flex_keeps_every_shape_a_search_meets_compiled(monkeypatch):
    """Each (masked heads, batch, grad mode) is one more compile of flex_attention. Past Dynamo's
    default of 8 it falls back to the unfused path (warning once per process); the room made for
    a search keeps all twelve shapes here compiled, and each still matches the eager result.
    Dynamo guards the same way on every backend, so its light "aot_eager" stands in for CUDA's
    Inductor."""
    import torch._dynamo
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from maitsearch.model.kernels import flex

    room = flex.RECOMPILE_LIMIT

    def compiled_shapes(limit: int) -> int:
        torch.compiler.reset()
        compiled = torch.compile(flex.flex_attention, dynamic=False, backend="aot_eager")
        monkeypatch.setattr(flex, "_compiled_flex", lambda: compiled)
        monkeypatch.setattr(flex, "RECOMPILE_LIMIT", limit)
        masks = flex.FlexMasks((8, 8), (3, 3), 1, (False, False, False))
        allowed = flex.allowed_fn(masks.grid, masks.window, masks.num_prefix)
        for batch, heads, grad in itertools.product((4, 3), (1, 2, 3), (True, False)):
            q, k, v = (torch.randn(batch, heads, 65, 16) for _ in range(3))
            score_mod = flex.make_score_mod(allowed, torch.zeros(heads))
            with torch._dynamo.config.patch(recompile_limit=8), torch.set_grad_enabled(grad):  # CPU flex has
                got = flex.compiled_flex_attention(q, k, v, score_mod=score_mod, scale=0.25)  # no backward
            want = flex.flex_attention(q, k, v, score_mod=score_mod, scale=0.25)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        shapes = len(_debug_get_cache_entry_list(flex.flex_attention.__code__))  # one compiled kernel each
        torch.compiler.reset()
        return shapes

    assert compiled_shapes(8) == 8, "at Dynamo's default limit the last four shapes run unfused"
    assert compiled_shapes(room) == 12


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("kernel", ["dense", "flex"])
def test_random_pattern_matches_reference_with_its_own_masks(kernel):
    modes = ("paper", "plain", "paper", "soft")
    masked, x = build(modes, (4, 5), (3, 3), 1, kernel, pattern="random")
    per_head = {}
    for h in (0, 2, 3):  # the masked heads, each with its own seeded pattern
        per_head[h] = token_matrix(random_matrix((4, 5), (3, 3), head_pattern_seed(0, 3, h)), 1)
    allowed = [per_head.get(h, torch.ones(21, 21, dtype=torch.bool)) for h in range(4)]
    if kernel == "flex":
        with torch.no_grad():
            torch.testing.assert_close(masked(x), reference_for(masked, modes, x, allowed), atol=1e-5, rtol=1e-5)
    else:
        check_forward_backward(masked, modes, x, allowed)


def test_unmasked_layer_runs_timm_code_exactly():
    torch.manual_seed(0)
    attn = Attention(24, num_heads=3, qkv_bias=True)
    x = torch.randn(2, 17, 24)
    expected = attn(x)
    masked = MaskedAttention.from_attention(attn, [1.0, 1.0, 1.0], grid_size=(4, 4), num_prefix_tokens=1)
    assert torch.equal(masked(x), expected)


def test_masked_layer_shares_parameters_and_state_dict_keys():
    attn = Attention(24, num_heads=3, qkv_bias=True)
    masked = MaskedAttention.from_attention(attn, [0.0, 0.5, 1.0], grid_size=(4, 4), num_prefix_tokens=1)
    assert masked.qkv is attn.qkv and masked.proj is attn.proj
    assert set(masked.state_dict()) == set(attn.state_dict()) | {"soft_logit"}
    masked.configure([0.0, 1.0, 1.0], grid_size=(4, 4), num_prefix_tokens=1)
    assert set(masked.state_dict()) == set(attn.state_dict())


def test_forward_never_computes_probabilities(monkeypatch):
    masked, x = build(HEAD_MIXES["hard+soft+plain"], (4, 4), (3, 3), 1, "auto")
    monkeypatch.setattr(MaskedAttention, "attention_probs", lambda *a: pytest.fail("probabilities computed"))
    masked(x).sum().backward()


@pytest.mark.parametrize("mix", ["hard+soft+plain", "non-canonical", "local+soft"])
def test_attention_probs_match_reference(mix):
    modes = HEAD_MIXES[mix]
    masked, x = build(modes, (3, 5), (3, 3), 2, "dense")
    allowed = neighbours_by_hand((3, 5), (3, 3), 2)
    probs = attention_probs(masked, x)
    q, k, _ = masked.qkv(x).reshape(2, 17, 3, 4, 8).permute(2, 0, 3, 1, 4)
    for h, mode in enumerate(modes):
        logits = q[:, h] @ k[:, h].transpose(-2, -1) / 8 ** 0.5
        if mode == "paper":
            logits = logits * allowed
        elif mode == "local":
            logits = logits.masked_fill(~allowed, float("-inf"))
        elif mode == "soft":
            alpha = torch.sigmoid(masked.soft_logit[masked.soft_heads.index(h)])
            logits = torch.where(allowed, logits, alpha * logits)
        torch.testing.assert_close(probs[:, h], logits.softmax(-1), atol=1e-6, rtol=1e-5)


def test_wrong_token_count_is_a_clear_error():
    masked, _ = build(HEAD_MIXES["sch1"], (4, 4), (3, 3), 1, "auto")
    with pytest.raises(ValueError, match="built for 17 tokens"):
        masked(torch.randn(1, 26, 32))


@pytest.mark.parametrize("mix", ["hard+soft+plain", "all-soft", "local+soft", "all-paper"])
@pytest.mark.parametrize("kernel", ["dense", "local"])
def test_bf16_autocast_runs_forward_and_backward_close_to_float32(kernel, mix):
    """Mixed precision as training uses it (bf16 autocast; on CPU here, CUDA's rules are the same):
    the custom autograd nodes must take bf16 activations with float32 probabilities from
    autocast's softmax, and agree with the float32 reference to bf16's precision."""
    modes = HEAD_MIXES[mix]
    masked, x = build(modes, (4, 4), (3, 3), 1, kernel)
    check_bf16_autocast(masked, modes, x, neighbours_by_hand((4, 4), (3, 3), 1))


def check_bf16_autocast(masked, modes, x, allowed):
    """Forward and backward under bf16 autocast on x's device against the float32 reference,
    to bf16's precision (8 bits of mantissa); gradients keep the parameters' float32."""
    params = [x, masked.qkv.weight] + ([masked.soft_logit] if masked.soft_heads else [])
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        out = masked(x)
        grads = torch.autograd.grad(out.float().square().sum(), params)
    expected = reference_for(masked, modes, x, [allowed] * len(modes))
    expected_grads = torch.autograd.grad(expected.square().sum(), params)
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)
    for got, want in zip(grads, expected_grads):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, atol=6e-2, rtol=6e-2)


# ---- eval mode and export: the inference kernels -------------------------------------------------
INFERENCE_CASES = [((4, 4), (3, 3), 1), ((4, 5), (3, 5), 2), ((6, 4), (5, 5), 0), ((3, 5), (3, 5), 1)]


@pytest.mark.parametrize("mix", HEAD_MIXES)
@pytest.mark.parametrize("grid,window,prefix", INFERENCE_CASES)
@pytest.mark.parametrize("path", ["eval", "export"])
def test_inference_paths_match_dense_reference(path, grid, window, prefix, mix, monkeypatch):
    """Eval mode with kernel local runs the band kernel (the shift kernel where the grid is too
    short for a band); export runs the band kernel, or here, below its token count, one fused
    dense attention over all heads. Both against the reference, forward and backward."""
    modes = HEAD_MIXES[mix]
    masked, x = build(modes, grid, window, prefix, "local" if path == "eval" else "auto")
    masked.eval()
    if path == "export":
        monkeypatch.setattr("maitsearch.model.attention._exporting", lambda: True)
        assert masked.inference_groups["export"] == [("fused", 0, len(modes))]
    elif masked.num_hard:
        assert masked.inference_groups["cpu"][0][0] == ("band" if grid[0] > window[0] else "window")
    allowed = neighbours_by_hand(grid, window, prefix)
    check_forward_backward(masked, modes, x, [allowed] * len(modes))


def test_proxy_sized_layers_evaluate_on_their_training_kernel():
    """Proxies (8x8 grid) train and evaluate exactly as before the inference kernels existed."""
    masked, _ = build(HEAD_MIXES["hard+soft+plain"], (8, 8), (3, 3), 1, "auto")
    assert masked.inference_groups["cpu"] == masked.groups["cpu"]
    assert masked.band is None


def test_eval_mode_takes_the_band_kernel_at_deployment_sizes():
    torch.manual_seed(0)
    attn = Attention(48, num_heads=3, qkv_bias=True)
    masked = MaskedAttention.from_attention(attn, [0.0, 0.0, 1.0], grid_size=(16, 16), num_prefix_tokens=1)
    assert masked.groups["cpu"][0][0] == "multiplicative", "training: dense below 512 tokens, as before"
    assert [path for path, *_ in masked.inference_groups["cpu"]] == ["band", "plain"]
    x = torch.randn(2, 257, 48)
    with torch.no_grad():
        trained = masked.train()(x)
        evaluated = masked.eval()(x)
    torch.testing.assert_close(evaluated, trained, atol=1e-5, rtol=1e-5)
