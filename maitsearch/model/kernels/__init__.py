"""Attention kernels for masked heads, and the rule that picks one per layer.

All of them compute the same function (docs/DESIGN.md, section 3) and are tested against a plain
dense reference: ``dense`` materialises (T, T) logits, ``local`` is O(N*k) for hard window masks,
``flex`` is FlexAttention for CUDA, and ``band`` is the window kernel of eval and export (rows of
keys by matmul, a graph that exports in about 35 nodes).

Two choices, each made once per layer when its masks are configured: ``resolve_kernel`` for
training (unchanged since the trial cache's first entries: proxies train and evaluate exactly
as before), ``resolve_inference_kernel`` for a model in eval mode and for export.
"""

from __future__ import annotations

from ...errors import ConfigError, check_choice
from . import flex
from .dense import multiplicative_attention, strict_attention
from .band import BandTable, band_window_attention
from .local import window_attention

KERNELS = ("auto", "dense", "local", "flex")

# Below this many tokens the whole (T, T) matrix is cheaper than nine shifted products on a
# CPU. Measured (benchmarks/scaling.py, one head, d=64, fwd+bwd): at 257 tokens dense 0.44 ms vs
# window 1.14 ms; at 577 tokens dense 2.25 ms vs window 1.77 ms (benchmarks/README.md, scaling-cpu).
LOCAL_MIN_TOKENS = 512

# Inference (eval mode, and export): from this many tokens the band kernel beats the dense one
# for a layer's hard heads, timed on one 192-wide, 3-head layer with 2 hard heads at batch 1 and
# 8 (``benchmarks/inference.py --crossover [--threads N]``; benchmarks/README.md,
# inference-crossover-t1 and -t2). With two threads, the deployment target's, band wins at both
# batches from 257 tokens in eager PyTorch and from 325 in onnxruntime (at 197 and 257 it is
# 1.04-1.10x dense's time there); with one thread onnxruntime's band already wins at 197, so the
# threshold suits the two-thread case and costs one thread little (attention is a small part of
# a 224-pixel model). The exported dense graph is one fused attention over all heads, close to
# timm's own. Proxies (65 tokens) stay far below both, so their evaluation runs the training
# kernel and its numbers.
BAND_MIN_TOKENS = {"cpu": 256, "export": 300}
INFERENCE_TARGETS = ("cpu", "cuda", "export")


def resolve_kernel(requested: str, *, device_type: str, num_tokens: int, pattern: str, attn_dropout: float) -> str:
    """The kernel for a layer's hard-masked heads on this device. Soft heads always run dense
    (or flex): a soft mask keeps every logit, so there is no sparsity to exploit."""
    check_choice("kernel", requested, KERNELS)
    if requested == "local" and (pattern != "window" or attn_dropout > 0):
        raise ConfigError("kernel: 'local' needs window masks and no attention dropout")
    if requested == "flex" and (not flex.AVAILABLE or attn_dropout > 0):
        raise ConfigError("kernel: 'flex' needs torch.nn.attention.flex_attention and no attention dropout")
    if requested != "auto":
        return requested
    if device_type == "cuda" and flex.AVAILABLE and attn_dropout == 0:
        return "flex"
    if pattern == "window" and attn_dropout == 0 and num_tokens >= LOCAL_MIN_TOKENS:
        return "local"
    return "dense"


def check_training_kernel(requested: str, device_type: str, flag: str = "--kernel") -> None:
    """What ``resolve_kernel`` cannot know when it configures a layer (for every device type at
    once, before the model moves): whether the device it trains on can run ``requested``."""
    check_choice(flag, requested, KERNELS)
    if requested == "flex" and device_type != "cuda":
        raise ConfigError(f"{flag} flex: FlexAttention trains on CUDA only (torch has no {device_type} backward "
                          "for it); use auto, dense or local here")


def resolve_inference_kernel(requested: str, *, target: str, num_tokens: int, grid: tuple[int, int],
                             window: tuple[int, int], pattern: str) -> str:
    """The kernel for a layer's hard heads in eval mode on ``target`` (cpu, cuda) or when
    exported (``export``): dense, band, local (window grids too short for a band), or flex
    (CUDA, or asked for). ``requested`` was checked by ``resolve_kernel``. Dropout plays no part:
    eval mode has none."""
    if requested == "dense" or pattern != "window":
        return "dense"
    if requested == "flex" and target != "export":
        return "flex"
    if requested == "auto" and target == "cuda" and flex.AVAILABLE:
        return "flex"
    if requested == "local" or num_tokens >= BAND_MIN_TOKENS.get(target, BAND_MIN_TOKENS["cpu"]):
        return "band" if BandTable.fits(grid, window) else "local"
    return "dense"


__all__ = ["KERNELS", "LOCAL_MIN_TOKENS", "BAND_MIN_TOKENS", "INFERENCE_TARGETS", "resolve_kernel",
           "check_training_kernel", "resolve_inference_kernel", "multiplicative_attention", "strict_attention",
           "window_attention", "band_window_attention", "BandTable", "flex"]
