"""Kernel choice, the O(N*k) paths' memory, and the FlexAttention mask functions on CPU."""

import pytest
import torch

from maitsearch.model.kernels import LOCAL_MIN_TOKENS, resolve_kernel, window_attention
from maitsearch.model.kernels.dense import multiplicative_attention
from maitsearch.model.kernels.flex import allowed_fn, make_mask_mod, make_score_mod
from maitsearch.model.kernels.probe import TensorProbe
from maitsearch.model.locality import token_matrix, window_matrix

from .reference import neighbours_by_hand


def qkv(grid, prefix, heads=2, dim=16, seed=0):
    torch.manual_seed(seed)
    tokens = prefix + grid[0] * grid[1]
    return [torch.randn(2, heads, tokens, dim, requires_grad=True) for _ in range(3)]


def probe_window(grid, semantics, prefix=2):
    q, k, v = qkv(grid, prefix)
    with TensorProbe() as probe:
        out = window_attention(q, k, v, grid=grid, window=(3, 3), num_prefix=prefix, scale=0.25, semantics=semantics)
        out.sum().backward()
    return probe


def probe_dense(grid, prefix=2):
    q, k, v = qkv(grid, prefix)
    allowed = token_matrix(window_matrix(grid, (3, 3)), prefix)
    with TensorProbe() as probe:
        multiplicative_attention(q, k, v, allowed, 0.25).sum().backward()
    return probe


@pytest.mark.parametrize("semantics", ["paper", "local"])
def test_window_kernel_never_builds_an_n_by_n_tensor(semantics):
    small, large = probe_window((10, 10), semantics), probe_window((20, 20), semantics)
    assert large.shapes, "the probe saw the computation"
    assert large.quadratic(400) == [] and small.quadratic(100) == []
    # four times the tokens: about four times the memory kept for backward (linear, not quadratic)
    assert 3.0 < large.saved_bytes / small.saved_bytes < 4.5
    assert large.largest() <= 2 * 2 * 22 * 22 * 16  # the padded (B, h, gh+2, gw+2, d) key grid


def test_the_probe_does_see_the_dense_matrix():
    small, large = probe_dense((10, 10)), probe_dense((20, 20))
    assert large.quadratic(400), "control: the dense kernel builds (B, h, T, T)"
    assert large.saved_bytes / small.saved_bytes > 12, "and its memory grows quadratically"


def test_kernel_choice():
    assert resolve_kernel("auto", device_type="cpu", num_tokens=197, pattern="window", attn_dropout=0) == "dense"
    assert resolve_kernel("auto", device_type="cpu", num_tokens=LOCAL_MIN_TOKENS, pattern="window",
                          attn_dropout=0) == "local"
    assert resolve_kernel("auto", device_type="cpu", num_tokens=4097, pattern="random", attn_dropout=0) == "dense"
    assert resolve_kernel("auto", device_type="cpu", num_tokens=4097, pattern="window", attn_dropout=0.1) == "dense"
    assert resolve_kernel("auto", device_type="cuda", num_tokens=197, pattern="window", attn_dropout=0) == "flex"
    assert resolve_kernel("dense", device_type="cuda", num_tokens=4097, pattern="window", attn_dropout=0) == "dense"
    with pytest.raises(ValueError, match="'local' needs window masks"):
        resolve_kernel("local", device_type="cpu", num_tokens=4097, pattern="random", attn_dropout=0)
    with pytest.raises(ValueError, match="kernel: unknown"):
        resolve_kernel("fast", device_type="cpu", num_tokens=10, pattern="window", attn_dropout=0)


@pytest.mark.parametrize("grid,window,prefix", [((4, 4), (3, 3), 1), ((3, 5), (3, 5), 2), ((6, 4), (5, 5), 1)])
def test_flex_mask_functions_match_the_hand_built_mask(grid, window, prefix):
    """The score_mod / mask_mod code that FlexAttention compiles on CUDA, evaluated on CPU over
    every (query, key) pair and compared with the reference factor and mask."""
    tokens = prefix + grid[0] * grid[1]
    expected = neighbours_by_hand(grid, window, prefix)
    q_idx, kv_idx = torch.arange(tokens)[:, None], torch.arange(tokens)[None, :]
    allowed = allowed_fn(grid, window, prefix)
    alpha = torch.tensor([0.0, 0.3])
    for head in (0, 1):
        h = torch.tensor(head)
        assert torch.equal(allowed(h, q_idx, kv_idx), expected)
        score = torch.randn(tokens, tokens)
        modded = make_score_mod(allowed, alpha)(score, torch.tensor(0), h, q_idx, kv_idx)
        reference = torch.where(expected, score, score * alpha[head])
        torch.testing.assert_close(modded, reference)
    strict = torch.tensor([True, False])
    mask_mod = make_mask_mod(allowed, strict)
    assert torch.equal(mask_mod(0, torch.tensor(0), q_idx, kv_idx), expected)
    assert mask_mod(0, torch.tensor(1), q_idx, kv_idx).all(), "soft heads keep every key"
