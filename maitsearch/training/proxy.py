"""Train one proxy MaiT from a mask spec: what every search trial runs.

``fit`` builds the proxy, trains it with the shared loop, measures validation and test top-1
and every head's ALS, and returns a ``TrialResult``. It knows nothing of strategies or of how
results are stored; it reports progress as events and prints nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..config import ProxyConfig
from ..data import ImageData, load_data
from ..errors import ConfigError, check_choice
from ..events import EpochDone, EventFn, MeasuringStarted, TrainingStarted, ignore
from ..model import apply_mask_spec, measure_als
from ..spec import MaskSpec, uniform_als
from .loop import (NonFiniteLoss, autocast_dtype, build_optimizer, epoch_seed, evaluate, maybe_compile,
                   resolve_device, train_one_epoch)

POS_EMBEDS = ("learned", "sincos")
POOLS = ("token", "avg", "map")

# Bump when a change to the training code, the model or the embedded data changes the numbers
# ``fit`` returns for the same spec and config: it is part of every trial-cache key, so old
# entries stop matching instead of passing off old numbers as new (runs/cache.py).
TRAINING_VERSION = 1


@dataclass
class TrialResult:
    """What one trained proxy tells a search. ``status`` is complete, pruned, nan_loss, oom or failed."""

    status: str
    val_top1: float | None = None
    test_top1: float | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    als: list[list[float]] | None = None  # raw ALS per (layer, head)
    als_uniform: float | None = None  # the raw ALS of uniform attention on this grid and window
    alphas: list[list[float]] | None = None  # every head's alpha at the end (soft masks learn theirs)
    alpha_history: dict[int, list[list[float]]] | None = None  # soft masks: alphas after every epoch
    val_top1_by_part: dict[str, float] | None = None  # a mixed task's validation top-1 in each part
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    reason: str = ""
    history: list[dict] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)  # the trained model, when kept

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}


class Pruned(Exception):
    """Raised by an ``on_epoch`` callback to stop a trial early (a pruner's decision)."""


def check_model_choices(config: ProxyConfig) -> None:
    """The proxy's named choices, one line each: checked here for ``fit`` callers, and by the
    search's config check before a run folder exists."""
    check_choice("proxy.pos_embed", config.pos_embed, POS_EMBEDS)
    check_choice("proxy.pool", config.pool, POOLS)


def build_proxy_model(spec: MaskSpec, config: ProxyConfig, data: ImageData) -> torch.nn.Module:
    """A timm VisionTransformer of the proxy's shape with ``spec`` applied."""
    from timm.models import VisionTransformer

    if spec.layers != config.layers or spec.heads != config.heads:
        raise ConfigError(f"spec is {spec.layers}x{spec.heads} but the proxy is {config.layers}x{config.heads}")
    check_model_choices(config)
    model = VisionTransformer(
        img_size=config.image_size, patch_size=config.patch_size, in_chans=data.in_chans,
        num_classes=data.num_classes, embed_dim=config.width, depth=config.layers, num_heads=config.heads,
        mlp_ratio=config.mlp_ratio, qkv_bias=True, init_values=config.layer_scale,
        drop_path_rate=config.drop_path, class_token=config.pool == "token", global_pool=config.pool,
        weight_init=config.weight_init)
    if config.pos_embed == "sincos":
        from timm.layers import build_sincos2d_pos_embed

        with torch.no_grad():  # the patches' part; a class token keeps its own
            model.pos_embed[0, model.num_prefix_tokens:] = build_sincos2d_pos_embed(list(config.grid), config.width)
    return apply_mask_spec(model, spec)


def fit(spec: MaskSpec, config: ProxyConfig, data: ImageData | None = None, *,
        on_epoch: Callable[[int, dict], None] | None = None, on_event: EventFn | None = None,
        keep_model: bool = False) -> TrialResult:
    """Train a proxy MaiT with ``spec`` and measure it.

    ``on_epoch(epoch, metrics)`` sees the validation metrics after every evaluated epoch (see
    ``eval_every``) and may raise ``Pruned``. ``on_event`` receives progress events
    (``maitsearch.events``). With ``keep_model`` the trained model rides along as
    ``result.model``. Deterministic on CPU for a given ``config.seed``.
    """
    start = time.perf_counter()
    data = data if data is not None else load_data(config.data, image_size=config.image_size,
                                                   data_dir=config.data_dir, train_copies=config.train_copies)
    if config.shift_augment:
        data = data.with_shift(config.shift_augment)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_proxy_model(spec, config, data).to(device)
    train_model = maybe_compile(model, config.compile, device)
    steps_per_epoch = math.ceil(data.size("train") / config.batch_size)
    optimizer, scheduler = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                                           min_lr=config.min_lr, warmup_epochs=config.warmup_epochs,
                                           epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                                           alpha_lr_scale=config.alpha_lr_scale,
                                           alpha_weight_decay=config.alpha_weight_decay)
    autocast = autocast_dtype(config.amp, device)
    parts = data.label_parts() or None
    result = TrialResult(status="complete", als_uniform=uniform_als(config.grid, spec.window))
    if spec.is_soft:
        result.alpha_history = {}
    emit = on_event or ignore
    emit(TrainingStarted(epochs=config.epochs, steps_per_epoch=steps_per_epoch))
    try:
        for epoch in range(config.epochs):
            train = train_one_epoch(
                train_model, data.batches("train", config.batch_size, shuffle=True,
                                          seed=epoch_seed(config.seed, epoch), device=device),
                optimizer, scheduler, device=device, epoch=epoch, label_smoothing=config.label_smoothing,
                grad_clip=config.grad_clip, autocast=autocast, first_step=result.steps, on_event=emit)
            result.steps += train["steps"]
            result.epochs = epoch + 1
            result.train_loss = train["loss"]
            metrics = {"epoch": epoch, "train_loss": train["loss"], "train_top1": train["top1"], "val_top1": None,
                       "val_loss": None, "train_images_per_s": train["images_per_s"],
                       "lr": optimizer.param_groups[0]["lr"]}
            evaluated = (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs
            if evaluated:
                val = evaluate(train_model, data.batches("val", 256, device=device), autocast=autocast,
                               parts=parts)
                result.val_top1, result.val_loss = val["top1"], val["loss"]
                result.val_top1_by_part = val.get("top1_by_part")
                metrics.update(val_top1=val["top1"], val_loss=val["loss"])
            if result.alpha_history is not None:  # every epoch: reading them costs nothing
                result.alpha_history[epoch] = current_alphas(model)
            result.history.append(metrics)
            emit(EpochDone(epoch=epoch, metrics=metrics))
            if evaluated and on_epoch is not None:
                on_epoch(epoch, metrics)
    except NonFiniteLoss as err:
        result.status, result.reason = "nan_loss", str(err)
        result.steps = err.step
    except Pruned as err:
        result.status, result.reason = "pruned", str(err) or f"pruned after epoch {result.epochs}"
    if result.status in ("complete", "pruned"):
        emit(MeasuringStarted())
        result.test_top1 = evaluate(model, data.batches("test", 256, device=device),
                                    autocast=autocast)["top1"] if result.ok else None
        als = measure_als(model, data.batches("val", 256, device=device))
        result.als = [[round(float(a), 6) for a in row] for row in als]
        if spec.is_soft:
            result.alphas = current_alphas(model)
    result.seconds = time.perf_counter() - start
    result.model = model if keep_model else None
    return result


def current_alphas(model) -> list[list[float]]:
    """(L, H) alpha of every head now: 0 hard, 1 plain, sigmoid(theta) for soft heads."""
    return [[round(float(a), 6) for a in block.attn.alphas()] for block in model.blocks]


def load_trained_proxy(checkpoint, spec: MaskSpec, config: ProxyConfig, data: ImageData) -> torch.nn.Module:
    """A proxy rebuilt from weights a run kept (``--keep-checkpoints``), in eval mode."""
    model = build_proxy_model(spec, config, data)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.eval()
