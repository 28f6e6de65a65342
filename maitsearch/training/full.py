"""Full training of a real-size timm model with a mask spec applied: how a found placement is used.

Checkpoints are written atomically after every epoch and load with ``weights_only=True``;
``resume=True`` continues from the last one with the model, optimizer and RNG state restored, so
an interrupted run ends bit-for-bit where an uninterrupted one would. Metrics go to
``metrics.jsonl`` (``pandas.read_json(path, lines=True)``). At the end the weights alone go to
``model.safetensors`` with timm's ``config.json`` (``save_weights``), for export and for
``timm.create_model("local-dir:OUT", pretrained=True)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import atomic
from ..data import load_data
from ..errors import ConfigError, ResumeError
from ..events import EpochDone, EventFn, TrainingStarted, ignore
from ..model import apply_mask_spec
from ..spec import MaskSpec, parse_spec
from .loop import (autocast_dtype, build_optimizer, epoch_seed, evaluate, maybe_compile, resolve_device,
                   train_one_epoch)

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Full training. Defaults follow DeiT's recipe, with its lr scaled to the batch size."""

    model: str = "mait_tiny_patch16_224"
    data: str = "digits"
    data_dir: str | None = None
    download: bool = False
    image_size: int | None = None  # None: the model's own (224 for the mait_/deit_ models)
    depth: int | None = None  # None: the model's own; the paper trains 12, 24 and 36
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # None: DeiT's 5e-4 x batch / 512
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    drop_path: float = 0.1  # DeiT-tiny's value
    grad_clip: float | None = None
    alpha_lr_scale: float = 10.0  # soft-mask alphas' lr over the weights' (see ProxyConfig)
    alpha_weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    compile: bool = False  # torch.compile on CUDA
    kernel: str = "auto"  # masked heads' kernel: auto (by token count and device), dense, local or flex

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 5e-4 * self.batch_size / 512

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_train_config(config: TrainConfig) -> None:
    """Every setting that can be checked before data loads or a folder is made."""
    check_model_name(config.model)
    resolve_device(config.device)
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(config, name)}: expected at least 1")
    if config.lr is not None and not config.lr > 0:
        raise ConfigError(f"--lr {config.lr}: expected a positive learning rate")


def check_model_name(name: str) -> None:
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
        raise ConfigError(f"--model {name}: not a timm model; {hint}")


def build_model(config: TrainConfig, spec: MaskSpec, num_classes: int, in_chans: int):
    import timm

    check_model_name(config.model)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans, "drop_path_rate": config.drop_path}
    if config.image_size is not None:
        kwargs["img_size"] = config.image_size
    if config.depth is not None:  # timm's ViT, DeiT, CaiT and mait_* constructors all take depth
        kwargs["depth"] = config.depth
    try:
        model = timm.create_model(config.model, **kwargs)
    except TypeError as err:  # a setting the model does not take (--depth on a ResNet)
        raise ConfigError(f"--model {config.model}: {str(err).splitlines()[0]}") from None
    try:
        return apply_mask_spec(model, spec, kernel=config.kernel)
    except TypeError as err:  # not a ViT or CaiT: no heads to mask
        raise ConfigError(f"--model {config.model}: {err}") from None


def train(spec: MaskSpec, config: TrainConfig, out: str | Path, *, resume: bool = False,
          on_event: EventFn | None = None) -> dict:
    """Train and evaluate; returns the last epoch's metrics. See the module docstring."""
    out = Path(out)
    emit = on_event or ignore
    check_train_config(config)
    checkpoint_path = out / CHECKPOINT
    state = None
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        changed = resume_differences(state, config, spec)
        if changed:
            raise ResumeError(f"--resume: {checkpoint_path} was written with other settings ({'; '.join(changed)}); "
                              "use the original flags or another --out")
    elif checkpoint_path.exists():
        raise ResumeError(f"--out {out} already holds a checkpoint: add --resume to continue it, or pick another --out")

    image_size = config.image_size or _model_image_size(config.model)
    data = load_data(config.data, image_size=image_size, data_dir=config.data_dir, download=config.download,
                     seed=config.seed)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config, spec, data.num_classes, data.in_chans).to(device)
    steps_per_epoch = math.ceil(data.size("train") / config.batch_size)
    optimizer, scheduler = build_optimizer(model, lr=config.resolved_lr, weight_decay=config.weight_decay,
                                           min_lr=config.min_lr, warmup_epochs=config.warmup_epochs,
                                           epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                                           alpha_lr_scale=config.alpha_lr_scale,
                                           alpha_weight_decay=config.alpha_weight_decay)
    first_epoch, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        first_epoch, history = state["epoch"], _read_metrics(out, state["epoch"])
    scheduler.step_update(first_epoch * steps_per_epoch)
    if state is None:
        out.mkdir(parents=True, exist_ok=True)
        spec.save(out / "spec.yaml")
        atomic.write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    train_model = maybe_compile(model, config.compile, device)
    autocast = autocast_dtype(config.amp, device)
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
        save_checkpoint(checkpoint_path, model, optimizer, epoch + 1, config, spec)
        atomic.write_text(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
        emit(EpochDone(epoch=epoch, metrics=metrics))
    save_weights(model, out)
    return metrics


def save_weights(model, out: Path) -> Path:
    """The trained weights without optimizer or RNG state: ``model.safetensors`` and timm's
    ``config.json`` (the ``save_for_hf`` layout; a ``mait_*`` config holds the spec inline, any
    other model's masks come back from ``spec.yaml`` through ``model.export.load_pretrained``)."""
    from ..model.export import save_pretrained

    return save_pretrained(model, out)


def resume_differences(state: dict, config: TrainConfig, spec: MaskSpec) -> list[str]:
    """What differs between a checkpoint's settings and these: ``epochs: 10 -> 20``."""
    saved, now = state["config"], json.loads(json.dumps(config.to_dict()))
    changed = [f"{key}: {saved.get(key)!r} -> {now.get(key)!r}" for key in sorted(set(saved) | set(now))
               if saved.get(key) != now.get(key)]
    if state["spec"] != spec.to_yaml():
        saved_spec = parse_spec(state["spec"], source="checkpoint")
        changed.append(f"mask spec: {saved_spec.compact()} -> {spec.compact()}")
    return changed


def save_checkpoint(path: Path, model, optimizer, epoch: int, config: TrainConfig, spec: MaskSpec) -> None:
    atomic.save_torch(path, {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
        "rng": torch.get_rng_state(), "config": json.loads(json.dumps(config.to_dict())), "spec": spec.to_yaml(),
    })


def load_checkpoint(path: Path) -> dict:
    """Tensors and plain containers only: anything else (a pickled object) is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError (and friends) for forbidden globals
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ResumeError(f"--resume: refusing {path}: it is not a plain tensor checkpoint ({first})") from None


def _read_metrics(out: Path, epochs: int) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:epochs]


def _model_image_size(name: str) -> int:
    import timm

    cfg = timm.models.get_pretrained_cfg(name) if hasattr(timm.models, "get_pretrained_cfg") else None
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224
