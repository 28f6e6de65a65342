"""MaiT on timm: ``apply_mask_spec`` and the registered ``mait_*`` models (docs/DESIGN.md, section 5).

A MaiT is a timm VisionTransformer whose blocks' attention modules are ``MaskedAttention``s owning
the same parameters, so DeiT checkpoints load into a MaiT and back.
"""

from __future__ import annotations

from pathlib import Path

from timm.layers import Attention
from timm.models import VisionTransformer, build_model_with_cfg, generate_default_cfgs, register_model

from .attention import MaskedAttention
from ..errors import ConfigError
from ..spec import PRESETS, MaskSpec, load_spec, preset


def resolve_spec(spec: MaskSpec | str | Path, layers: int | None = None, heads: int | None = None) -> MaskSpec:
    """A MaskSpec from a MaskSpec, a YAML path, or a preset name (which needs layers and heads)."""
    if isinstance(spec, MaskSpec):
        return spec
    if isinstance(spec, str) and spec in PRESETS and not Path(spec).exists():
        if layers is None or heads is None:
            raise ConfigError(f"mask_spec: preset {spec!r} needs the model's layers and heads")
        return preset(spec, layers, heads)
    return load_spec(spec)


def apply_mask_spec(model: VisionTransformer, spec: MaskSpec | str | Path, *, kernel: str = "auto") -> VisionTransformer:
    """Turn a timm VisionTransformer (DeiT, distilled DeiT, ...) into a MaiT in place.

    Every block's attention becomes a ``MaskedAttention`` sharing its weights; layers without
    masks keep running timm's code. The patch grid and prefix-token count are read from the
    model. Applying again replaces the previous spec. Returns the model.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "patch_embed") or not hasattr(model, "num_prefix_tokens"):
        raise TypeError(f"apply_mask_spec: expected a timm VisionTransformer, got {type(model).__name__}")
    layers = len(blocks)
    heads = {getattr(block.attn, "num_heads", None) for block in blocks}
    spec = resolve_spec(spec, layers, next(iter(heads)) if len(heads) == 1 else None)
    if getattr(model, "dynamic_img_size", False):
        raise ConfigError("apply_mask_spec: models with dynamic_img_size have no fixed patch grid to mask")
    if layers != spec.layers:
        raise ConfigError(f"apply_mask_spec: the spec has {spec.layers} layers but the model has {layers} blocks")
    for index, block in enumerate(blocks):
        if not isinstance(block.attn, Attention):
            raise TypeError(f"apply_mask_spec: block {index} uses {type(block.attn).__name__}, "
                            "not timm's Attention, so its heads cannot be masked")
        if block.attn.num_heads != spec.heads:
            raise ConfigError(f"apply_mask_spec: the spec has {spec.heads} heads per layer but block {index} "
                             f"has {block.attn.num_heads}")

    config = dict(grid_size=tuple(model.patch_embed.grid_size), num_prefix_tokens=model.num_prefix_tokens,
                  window=spec.window, semantics=spec.semantics, pattern=spec.pattern,
                  pattern_seed=spec.pattern_seed, kernel=kernel)
    for index, (block, alphas) in enumerate(zip(blocks, spec.alphas())):
        if isinstance(block.attn, MaskedAttention):
            block.attn.configure(alphas, layer_index=index, **config)
        else:
            block.attn = MaskedAttention.from_attention(block.attn, alphas, layer_index=index, **config)
    model.mask_spec = spec
    return model


# ---- registered timm models --------------------------------------------------------------
# Widths and heads of the paper's Table 1. Depth is a kwarg (12, 24 and 36 in the paper).
MAIT_SIZES = {"xtiny": (144, 3), "tiny": (192, 3), "xsmall": (288, 3), "small": (384, 6)}

default_cfgs = generate_default_cfgs({
    f"mait_{size}_patch16_224.untrained": {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "crop_pct": 0.9, "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "first_conv": "patch_embed.proj",
        "classifier": "head",
    }
    for size in MAIT_SIZES
})


def _create_mait(size: str, pretrained: bool = False, depth: int = 12,
                 mask_spec: MaskSpec | str | Path | None = None, kernel: str = "auto", **kwargs) -> VisionTransformer:
    if pretrained:
        raise ConfigError("mait models have no pretrained weights: load a DeiT state dict into them instead")
    embed_dim, num_heads = MAIT_SIZES[size]
    model = build_model_with_cfg(VisionTransformer, f"mait_{size}_patch16_224", pretrained=False,
                                 patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=num_heads, **kwargs)
    if mask_spec is not None:
        apply_mask_spec(model, mask_spec, kernel=kernel)
    return model


@register_model
def mait_xtiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """MaiT extra-tiny (width 144, 3 heads). ``depth=``, ``mask_spec=`` (path, MaskSpec or preset name)."""
    return _create_mait("xtiny", pretrained, **kwargs)


@register_model
def mait_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """MaiT tiny (width 192, 3 heads), DeiT-tiny's shape. ``depth=``, ``mask_spec=``."""
    return _create_mait("tiny", pretrained, **kwargs)


@register_model
def mait_xsmall_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """MaiT extra-small (width 288, 3 heads). ``depth=``, ``mask_spec=``."""
    return _create_mait("xsmall", pretrained, **kwargs)


@register_model
def mait_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """MaiT small (width 384, 6 heads), DeiT-small's shape. ``depth=``, ``mask_spec=``."""
    return _create_mait("small", pretrained, **kwargs)
