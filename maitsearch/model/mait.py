"""MaiT on timm: ``apply_mask_spec`` and the registered ``mait_*`` models (docs/DESIGN.md, section 5).

A MaiT is a timm model whose attention modules are masked versions owning the same parameters,
so checkpoints move between DeiT (or CaiT) and MaiT both ways. ``apply_mask_spec`` converts a
timm VisionTransformer (DeiT, distilled DeiT, ...) or a CaiT in place; the registered ``mait_*``
models are ``MaiT``s, ViTs built masked, registered the way timm registers its own models
(pretrained cfgs, ``features_only``, ``forward_intermediates``, FX and TorchScript).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Attention
from timm.models import VisionTransformer, build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.cait import Cait, TalkingHeadAttn
from timm.models.vision_transformer import checkpoint_filter_fn

from ..errors import ConfigError
from ..spec import (PRESETS, MaskSpec, inline_dict, is_compact_text, load_spec, named_preset, parse_compact_text,
                    spec_from_dict)
from .attention import MaskedAttention
from .talking_heads import MaskedTalkingHeadAttn


SpecLike = MaskSpec | dict | str | Path
NOT_A_SPEC = f"no such file, nor a preset ({', '.join(PRESETS)}) or compact text"  # text that names no spec


class MasksNotSavedWarning(UserWarning):
    """A masked model whose timm config (``save_for_hf``) would rebuild it without its masks."""


def resolve_spec(spec: SpecLike, layers: int | None = None, heads: int | None = None, *,
                 source: str = "mask_spec") -> MaskSpec:
    """A MaskSpec from any form a model accepts:

    - a ``MaskSpec``;
    - a dict with the YAML's fields (how a ``mait_*`` model's config.json stores its spec);
    - compact text, hex head bits per layer with an optional window and semantics
      (``31``, ``31@3x5:local``; needs the heads): never taken for a path;
    - a preset name, optionally with a window (``sch2``, ``sch1@5x5``; needs layers and heads),
      unless a file of that name exists;
    - a YAML path.

    ``source`` names the argument or flag the text came from, in errors.
    """
    if isinstance(spec, MaskSpec):
        return spec
    if isinstance(spec, dict):
        return spec_from_dict(spec)
    if isinstance(spec, str) and is_compact_text(spec):
        if heads is None:
            raise ConfigError(f"{source}: compact spec {spec!r} needs the model's heads per layer")
        return parse_compact_text(spec, heads)
    if names_preset(spec):
        if layers is None or heads is None:
            raise ConfigError(f"{source}: preset {spec!r} needs the model's layers and heads")
        return named_preset(spec, layers, heads)
    if not isinstance(spec, (str, Path)):
        raise ConfigError(f"{source}: expected a MaskSpec, a dict, a preset name, compact text or a YAML path, "
                          f"got {type(spec).__name__}")
    if isinstance(spec, str) and Path(spec).suffix not in (".yaml", ".yml") and not Path(spec).exists():
        raise ConfigError(f"{source} {spec}: {NOT_A_SPEC}")  # a mistyped preset, not a missing file
    return load_spec(spec)


def sized_by_model(spec: SpecLike) -> bool:
    """Whether ``spec`` is compact text or a preset name: a placement only once the model's
    layers and heads are known (``resolve_spec`` with both)."""
    return isinstance(spec, str) and (is_compact_text(spec) or names_preset(spec))


def names_preset(spec: SpecLike) -> bool:
    """Whether ``spec`` is a preset name (``sch2``, ``sch1@5x5``) rather than a file that happens to share it."""
    return isinstance(spec, str) and spec.partition("@")[0] in PRESETS and not Path(spec).exists()


def layers_and_heads(model) -> tuple[int, int | None]:
    """The blocks of a timm ViT or CaiT and their heads per layer (None if the blocks differ),
    what a preset or compact spec needs to become a placement for this model."""
    heads = {getattr(block.attn, "num_heads", None) for block in model.blocks}
    return len(model.blocks), next(iter(heads)) if len(heads) == 1 else None


def apply_mask_spec(model, spec: MaskSpec | str | Path, *, kernel: str = "auto"):
    """Turn a timm VisionTransformer (DeiT, distilled DeiT, ...) or CaiT into a MaiT in place.

    Every block's attention becomes a masked one sharing its weights; a ViT's layers without
    masks keep running timm's code. The patch grid and prefix-token count are read from the
    model; CaiT's class-attention layers are left alone. Applying again replaces the previous
    spec. Returns the model.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "patch_embed") or not hasattr(model, "num_prefix_tokens"):
        raise TypeError(f"apply_mask_spec: expected a timm VisionTransformer or CaiT, got {type(model).__name__}")
    is_cait = isinstance(model, Cait)
    kind = TalkingHeadAttn if is_cait else Attention
    layers, heads = layers_and_heads(model)
    spec = resolve_spec(spec, layers, heads)
    if getattr(model, "dynamic_img_size", False):
        raise ConfigError("apply_mask_spec: models with dynamic_img_size have no fixed patch grid to mask")
    if layers != spec.layers:
        raise ConfigError(f"apply_mask_spec: the spec has {spec.layers} layers but the model has {layers} blocks")
    for index, block in enumerate(blocks):
        if not isinstance(block.attn, kind):
            raise TypeError(f"apply_mask_spec: block {index} uses {type(block.attn).__name__}, "
                            f"not timm's {kind.__name__}, so its heads cannot be masked")
        if block.attn.num_heads != spec.heads:
            raise ConfigError(f"apply_mask_spec: the spec has {spec.heads} heads per layer but block {index} "
                              f"has {block.attn.num_heads}")

    grid = tuple(model.patch_embed.grid_size)
    shape = dict(window=spec.window, semantics=spec.semantics, pattern=spec.pattern, pattern_seed=spec.pattern_seed)
    for index, (block, alphas) in enumerate(zip(blocks, spec.alphas())):
        if is_cait:  # patch layers hold no class token: it joins in the class-attention layers
            config = dict(grid_size=grid, layer_index=index, **shape)
            masked_class = MaskedTalkingHeadAttn
        else:
            config = dict(grid_size=grid, num_prefix_tokens=model.num_prefix_tokens, layer_index=index,
                          kernel=kernel, **shape)
            masked_class = MaskedAttention
        if isinstance(block.attn, masked_class):
            block.attn.configure(alphas, **config)
        else:
            block.attn = masked_class.from_attention(block.attn, alphas, **config)
    model.mask_spec = spec
    if not isinstance(model, MaiT) and hasattr(model, "pretrained_cfg") and spec.num_masked + spec.num_soft:
        warnings.warn(f"apply_mask_spec: timm's save_for_hf config of this {type(model).__name__} will not carry "
                      f"the masks (it rebuilds an unmasked model); {_saving_hint(model)}",
                      MasksNotSavedWarning, stacklevel=2)
    return model


def _saving_hint(model) -> str:
    """The way to a saved config that keeps the masks: the matching ``mait_*`` model, if any."""
    shape = (getattr(model, "embed_dim", None), getattr(model.blocks[0].attn, "num_heads", None))
    patch = tuple(getattr(model.patch_embed, "patch_size", ()))
    size = next((name for name, dims in MAIT_SIZES.items() if dims == shape), None)
    if size and patch == (16, 16) and not isinstance(model, Cait) and model.num_prefix_tokens == 1:
        return (f"build it as timm.create_model('mait_{size}_patch16_224', mask_spec=...), which stores the "
                f"spec inline and loads these weights")
    return "keep the spec beside the weights (MaskSpec.save) and call apply_mask_spec after loading"


def attention_prefix_tokens(model) -> int:
    """Prefix tokens the attention layers see: CaiT's patch layers see none."""
    return 0 if isinstance(model, Cait) else model.num_prefix_tokens


# ---- registered timm models --------------------------------------------------------------
class MaiT(VisionTransformer):
    """A timm VisionTransformer built with a mask spec (``mask_spec``: any form ``resolve_spec``
    takes; default ``sch1``, one masked head per layer; ``none`` for plain DeiT). The mask is
    built for the grid of ``img_size``, so the input size is fixed (``fixed_input_size`` in the
    pretrained cfg).

    The spec travels with the weights: timm's reconstruction arguments (``_model_args``, which
    ``save_for_hf`` writes to config.json and ``create_model("local-dir:...")`` or
    ``"hf-hub:..."`` reads back) hold the spec in force inline, as a dict, whatever form it was
    given in (a path, a MaskSpec, a preset, compact text) and after ``apply_mask_spec`` too."""

    __jit_unused_properties__ = ["_model_args"]  # Python-side metadata: TorchScript leaves it alone

    def __init__(self, mask_spec: SpecLike | None = "sch1", kernel: str = "auto", **kwargs):
        super().__init__(**kwargs)
        apply_mask_spec(self, "none" if mask_spec is None else mask_spec, kernel=kernel)

    @property
    def _model_args(self) -> dict[str, Any]:
        args = dict(self.__dict__.get("_recorded_model_args", {}))
        args["mask_spec"] = inline_dict(self.mask_spec)
        return args

    @_model_args.setter
    def _model_args(self, value: dict[str, Any]) -> None:  # timm's factory records its kwargs here
        self.__dict__["_recorded_model_args"] = dict(value)


# Widths and heads of the paper's Table 1. Depth is a kwarg (12, 24 and 36 in the paper).
MAIT_SIZES = {"xtiny": (144, 3), "tiny": (192, 3), "xsmall": (288, 3), "small": (384, 6)}


def _cfg(**overrides) -> dict:
    return {"url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
            "fixed_input_size": True,  # the masks are built for one patch grid
            "crop_pct": 0.9, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
            "first_conv": "patch_embed.proj", "classifier": "head", "license": "apache-2.0", **overrides}


# ``.untrained``: no weights are published; pretrained=True takes DeiT weights from a local
# file through timm's own mechanism: pretrained_cfg_overlay=dict(file=PATH).
default_cfgs = generate_default_cfgs({f"mait_{size}_patch16_224.untrained": _cfg() for size in MAIT_SIZES})


def _create_mait(size: str, pretrained: bool = False, **kwargs) -> MaiT:
    embed_dim, num_heads = MAIT_SIZES[size]
    out_indices = kwargs.pop("out_indices", 3)
    # the size's shape, which a keyword overrides as in timm's own vit_* and deit_* functions;
    # the names fix no depth, so a spec that names its layers (a file, a MaskSpec) gives it,
    # read here once and handed on as read
    spec = kwargs.get("mask_spec")
    if spec is not None and not sized_by_model(spec):
        kwargs["mask_spec"] = spec = resolve_spec(spec)
    depth = spec.layers if isinstance(spec, MaskSpec) else 12
    model_args = dict(patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=num_heads)
    return build_model_with_cfg(MaiT, f"mait_{size}_patch16_224", pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
                                **dict(model_args, **kwargs))


@register_model
def mait_xtiny_patch16_224(pretrained: bool = False, **kwargs) -> MaiT:
    """MaiT extra-tiny (width 144, 3 heads). ``mask_spec=`` (path, MaskSpec or preset name) and
    ``depth=`` (default: the spec's layers, or 12 for a preset)."""
    return _create_mait("xtiny", pretrained, **kwargs)


@register_model
def mait_tiny_patch16_224(pretrained: bool = False, **kwargs) -> MaiT:
    """MaiT tiny (width 192, 3 heads), DeiT-tiny's shape. ``depth=``, ``mask_spec=``."""
    return _create_mait("tiny", pretrained, **kwargs)


@register_model
def mait_xsmall_patch16_224(pretrained: bool = False, **kwargs) -> MaiT:
    """MaiT extra-small (width 288, 3 heads). ``depth=``, ``mask_spec=``."""
    return _create_mait("xsmall", pretrained, **kwargs)


@register_model
def mait_small_patch16_224(pretrained: bool = False, **kwargs) -> MaiT:
    """MaiT small (width 384, 6 heads), DeiT-small's shape. ``depth=``, ``mask_spec=``."""
    return _create_mait("small", pretrained, **kwargs)
