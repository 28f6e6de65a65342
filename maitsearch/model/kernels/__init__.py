"""Attention kernels for masked heads, and the rule that picks one per layer.

All of them compute the same function (docs/DESIGN.md, section 3) and are tested against a plain
dense reference: ``dense`` materialises (T, T) logits, ``local`` is O(N*k) for hard window masks,
``flex`` is FlexAttention for CUDA.
"""

from __future__ import annotations

from ...errors import ConfigError, check_choice
from . import flex
from .dense import multiplicative_attention, strict_attention
from .local import window_attention

KERNELS = ("auto", "dense", "local", "flex")

# Below this many tokens the whole (T, T) matrix is cheaper than nine shifted products on a
# CPU. Measured (benchmarks/scaling.py, one head, d=64, fwd+bwd): at 257 tokens dense 0.44 ms vs
# window 1.14 ms; at 577 tokens dense 2.25 ms vs window 1.77 ms. See README, Performance.
LOCAL_MIN_TOKENS = 512


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


__all__ = ["KERNELS", "LOCAL_MIN_TOKENS", "resolve_kernel", "multiplicative_attention", "strict_attention",
           "window_attention", "flex"]
