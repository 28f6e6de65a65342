"""Full training of a real-size timm model with a mask spec applied: how a found placement is used.

Two recipes (training/recipes.py): ``light``, the proxies' own loop in one process, here; and
``deit``, DeiT's recipe from timm's parts, in one process or many under torchrun
(training/deit.py). Both write a checkpoint atomically after every epoch (loaded with
``weights_only=True``), and ``resume=True`` continues from the last one so that an interrupted
run ends bit-for-bit where an uninterrupted one would. Metrics go to ``metrics.jsonl``
(``pandas.read_json(path, lines=True)``). At the end the weights alone go
to ``model.safetensors`` with timm's ``config.json`` (``save_weights``), for export and for
``timm.create_model("local-dir:OUT", pretrained=True)``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import check_writable
from ..data import load_data
from ..errors import ConfigError
from ..events import EpochDone, EventFn, TrainingPlan, TrainingStarted, ignore
from ..model import apply_mask_spec, resolve_spec
from ..model.mait import MasksNotSavedWarning, SpecLike, layers_and_heads, sized_by_model
from ..spec import MaskSpec
from .checkpoints import (CHECKPOINT, check_resume, find_checkpoint, load_checkpoint, plain, read_metrics,
                          resume_differences, save_checkpoint, save_weights, start_folder, write_metrics)
from .loop import (autocast_dtype, build_optimizer, epoch_seed, evaluate, maybe_compile, resolve_device,
                   train_one_epoch)
from .recipes import TrainConfig, check_model_name, check_train_config

__all__ = ["TrainConfig", "train", "check_train_config", "build_model", "placement_for_model",
           "load_checkpoint", "resume_differences", "CHECKPOINT"]


def build_model(config: TrainConfig, spec: MaskSpec, num_classes: int, in_chans: int):
    model = _create_model(config, num_classes, in_chans)
    try:
        with warnings.catch_warnings():
            # timm's config.json of a masked deit_* or cait_* cannot carry the masks: a training
            # folder and an export keep spec.yaml beside the weights instead (trained.py)
            warnings.simplefilter("ignore", MasksNotSavedWarning)
            return apply_mask_spec(model, spec, kernel=config.kernel)
    except TypeError as err:  # not a ViT or CaiT: no heads to mask
        raise ConfigError(f"--model {config.model}: {err}") from None


def placement_for_model(spec: SpecLike, config: TrainConfig) -> tuple[MaskSpec, TrainConfig]:
    """The placement ``spec`` names for the model ``config`` trains, and that config: a preset
    (``sch2``, ``none`` for the unmasked baseline) or compact text takes the model's layers and
    heads; a YAML path is checked against them, and a ``mait_*`` model without a depth takes the
    spec's (those names fix none, and a searched placement names its layers). The model's size
    is read from it built on the meta device: no weights are made."""
    if sized_by_model(spec):
        return resolve_spec(spec, *_layers_and_heads(config)), config
    placement = resolve_spec(spec, source="--spec")
    layers, heads = _layers_and_heads(config)
    if (layers != placement.layers and heads == placement.heads and config.depth is None
            and config.model.startswith("mait_")):
        config = dataclasses.replace(config, depth=placement.layers)
        layers = placement.layers
    if (layers, heads) != (placement.layers, placement.heads):
        fix = (f"--depth {placement.layers} builds it at the spec's depth" if heads == placement.heads
               else f"it needs a model with {placement.heads} heads per layer")
        raise ConfigError(f"--spec {spec}: {placement.layers} layers x {placement.heads} heads, but {config.model} "
                          f"has {layers} x {heads}; {fix}")
    return placement, config


def _layers_and_heads(config: TrainConfig) -> tuple[int, int | None]:
    try:
        with torch.device("meta"):
            model = _create_model(config, num_classes=10, in_chans=3)
    except (RuntimeError, NotImplementedError):  # a constructor that reads a tensor's value (older timm's .item())
        model = _create_model(config, num_classes=10, in_chans=3)
    if not hasattr(model, "blocks"):
        raise ConfigError(f"--model {config.model}: not a timm ViT or CaiT, so it has no heads to mask")
    patches = getattr(model, "patch_embed", None)
    if patches is not None and min(getattr(patches, "grid_size", (1,))) < 1:  # else a convolution's traceback later
        raise ConfigError(f"--img-size {config.image_size}: smaller than {config.model}'s patches "
                          f"({'x'.join(map(str, patches.patch_size))})")
    return layers_and_heads(model)


def _create_model(config: TrainConfig, num_classes: int, in_chans: int):
    import timm

    check_model_name(config.model)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans, "drop_path_rate": config.drop_path}
    if config.image_size is not None:
        kwargs["img_size"] = config.image_size
    if config.depth is not None:  # timm's ViT, DeiT, CaiT and mait_* constructors all take depth
        kwargs["depth"] = config.depth
    try:
        return timm.create_model(config.model, **kwargs)
    except TypeError as err:  # a setting the model does not take (--depth on a ResNet)
        raise ConfigError(f"--model {config.model}: {str(err).splitlines()[0]}") from None


def train(spec: MaskSpec, config: TrainConfig, out: str | Path, *, resume: bool = False,
          on_event: EventFn | None = None) -> dict:
    """Train and evaluate; returns the last epoch's metrics. See the module docstring."""
    out, emit = Path(out), on_event or ignore
    check_train_config(config)
    check_writable(out, "--out")
    if config.recipe == "deit":
        from .deit import train_deit

        return train_deit(spec, config, out, resume=resume, emit=emit)
    from .distributed import launched

    if launched().distributed:
        raise ConfigError("--recipe light trains in one process; under torchrun use --recipe deit")
    return _train_light(spec, config, out, resume, emit)


def _train_light(spec: MaskSpec, config: TrainConfig, out: Path, resume: bool, emit: EventFn) -> dict:
    """The proxies' loop (training/loop.py) on the whole model, in one process."""
    checkpoint_path = out / CHECKPOINT
    state = find_checkpoint(out, resume)
    if state is not None:
        check_resume(state, checkpoint_path, config, spec, TrainConfig())
    image_size = config.image_size or model_image_size(config.model)
    data = load_data(config.data, image_size=image_size, data_dir=config.data_dir, download=config.download,
                     seed=config.seed)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config, spec, data.num_classes, data.in_chans).to(device)
    steps_per_epoch = math.ceil(data.size("train") / config.batch_size)
    optimizer, scheduler = build_optimizer(model, lr=config.resolved_lr, weight_decay=config.weight_decay,
                                           min_lr=config.min_lr, warmup_epochs=config.resolved_warmup_epochs,
                                           epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                                           alpha_lr_scale=config.alpha_lr_scale,
                                           alpha_weight_decay=config.alpha_weight_decay)
    first_epoch, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        first_epoch, history = state["epoch"], read_metrics(out, state["epoch"])
    scheduler.step_update(first_epoch * steps_per_epoch)
    if state is None:
        start_folder(out, spec, config)

    train_model = maybe_compile(model, config.compile, device)
    autocast = autocast_dtype(config.amp, device)
    emit(TrainingPlan(recipe="light", processes=1, backend=None, device=str(device), batch_size=config.batch_size,
                      grad_accum_steps=1, global_batch=config.batch_size, lr=config.resolved_lr,
                      lr_rule=config.lr_rule(1), epochs=config.epochs, first_epoch=first_epoch))
    emit(TrainingStarted(epochs=config.epochs, steps_per_epoch=steps_per_epoch, first_epoch=first_epoch))
    metrics: dict = history[-1] if history else {}
    for epoch in range(first_epoch, config.epochs):
        stats = train_one_epoch(
            train_model, data.batches("train", config.batch_size, shuffle=True, seed=epoch_seed(config.seed, epoch),
                                      device=device),
            optimizer, scheduler, device=device, epoch=epoch, label_smoothing=config.label_smoothing,
            grad_clip=config.grad_clip, autocast=autocast, first_step=epoch * steps_per_epoch, on_event=emit)
        val = evaluate(train_model, data.batches("val", 256, device=device), autocast=autocast)
        metrics = {"epoch": epoch, "train_loss": stats["loss"], "train_top1": stats["top1"],
                   "val_loss": val["loss"], "val_top1": val["top1"], "lr": optimizer.param_groups[0]["lr"],
                   "train_images_per_s": stats["images_per_s"]}
        history.append(metrics)
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
            "rng": torch.get_rng_state(), "config": plain(config), "spec": spec.to_yaml()})
        write_metrics(out, history)
        emit(EpochDone(epoch=epoch, metrics=metrics))
    save_weights(model, out, data)
    return metrics


def model_image_size(name: str) -> int:
    import timm

    cfg = timm.models.get_pretrained_cfg(name) if hasattr(timm.models, "get_pretrained_cfg") else None
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224

