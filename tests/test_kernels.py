"""Kernel choice, the O(N*k) paths' memory, the band kernel against the dense reference, and the
FlexAttention mask functions on CPU."""

import pytest
import torch

from maitsearch.model.kernels import (BAND_MIN_TOKENS, LOCAL_MIN_TOKENS, BandTable, band_window_attention, flex,
                                      resolve_inference_kernel, resolve_kernel, window_attention)
from maitsearch.model.kernels.dense import multiplicative_attention
from maitsearch.model.kernels.flex import allowed_fn, make_mask_mod, make_score_mod
from maitsearch.model.kernels.probe import TensorProbe
from maitsearch.model.locality import token_matrix, window_matrix

from .reference import dense_attention, neighbours_by_hand


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


# ---- the band kernel (eval and export) ---------------------------------------------------------
@pytest.mark.parametrize("semantics", ["paper", "local"])
@pytest.mark.parametrize("grid,window,prefix", [((4, 4), (3, 3), 1), ((4, 5), (3, 5), 2), ((6, 4), (5, 5), 0),
                                                ((5, 7), (1, 3), 1), ((7, 3), (3, 7), 1)])
def test_band_kernel_matches_dense_reference_forward_and_backward(grid, window, prefix, semantics):
    q, k, v = qkv(grid, prefix, heads=2, dim=8)
    allowed = neighbours_by_hand(grid, window, prefix)
    out = band_window_attention(q, k, v, BandTable(grid, window, prefix), scale=8 ** -0.5, semantics=semantics)
    expected = torch.stack([dense_attention(q[:, h], k[:, h], v[:, h], semantics, allowed) for h in range(2)], 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), (q, k, v))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (q, k, v))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_band_kernel_never_builds_an_n_by_n_tensor():
    q, k, v = qkv((20, 20), 1)
    with torch.no_grad(), TensorProbe() as probe:
        band_window_attention(q, k, v, BandTable((20, 20), (3, 3), 1), scale=0.25, semantics="paper")
    assert probe.shapes and probe.quadratic(400) == []
    # the largest tensor is the logits: (B, h, N, 1 prefix key + 3 * gw band keys + 1 pseudo-key),
    # or the gathered keys, (B, h, gh, 1 + 3 * gw, d)
    assert probe.largest() == max(2 * 2 * 400 * (1 + 60 + 1), 2 * 2 * 20 * (1 + 60) * 16)


def test_band_kernel_needs_more_grid_rows_than_window_rows():
    assert not BandTable.fits((3, 5), (3, 3)) and BandTable.fits((4, 5), (3, 3))
    with pytest.raises(ValueError, match="needs more rows"):
        BandTable((3, 5), (3, 3), 1)


def test_inference_kernel_choice():
    def choose(requested="auto", target="cpu", tokens=197, grid=(14, 14), pattern="window"):
        return resolve_inference_kernel(requested, target=target, num_tokens=tokens, grid=grid, window=(3, 3),
                                        pattern=pattern)

    assert choose(tokens=65, grid=(8, 8)) == "dense", "proxies evaluate on the kernel they train on"
    assert choose(tokens=BAND_MIN_TOKENS["cpu"]) == "band"
    assert choose(target="export", tokens=BAND_MIN_TOKENS["export"] - 1) == "dense"
    assert choose(target="export", tokens=3137, grid=(56, 56)) == "band"
    assert choose(target="export", tokens=3137, pattern="random") == "dense"
    assert choose(requested="flex", target="export", tokens=3137) == "band", "flex does not export"
    assert choose(requested="local", tokens=10, grid=(3, 3)) == "local", "too short for a band: the shift kernel"
    assert choose(requested="dense", target="export", tokens=3137) == "dense"
    if flex.AVAILABLE:
        assert choose(target="cuda") == "flex"
