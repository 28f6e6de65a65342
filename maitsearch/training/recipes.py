"""The settings of ``maitsearch train``, and the timm function behind each part of the DeiT recipe.

Two recipes:

- ``light``: the single-process loop the proxies share (training/loop.py): AdamW, a per-step
  cosine schedule, label smoothing, in-memory batches. Quick, for the embedded digits and tests.
- ``deit``: DeiT's recipe (Touvron et al. 2021), which the paper trains MaiT with, assembled
  from timm's own parts rather than written again here:

  | part | timm | settings |
  |---|---|---|
  | augmentation | ``timm.data.create_transform`` | auto_augment (RandAugment), interpolation, color_jitter, reprob, remode |
  | mixup and cutmix | ``timm.data.Mixup`` with ``timm.loss.SoftTargetCrossEntropy`` | mixup, cutmix, mixup_prob, mixup_switch_prob, mixup_mode, label_smoothing |
  | repeated augmentation | ``timm.data.distributed_sampler.RepeatAugSampler`` (several processes) | aug_repeats |
  | stochastic depth | the timm model's ``drop_path_rate`` | drop_path |
  | optimizer | ``timm.optim.create_optimizer_v2`` | opt, lr, lr_base, lr_base_size, weight_decay, opt_eps, grad_clip |
  | schedule | ``timm.scheduler.create_scheduler_v2`` | sched, warmup_epochs, warmup_lr, min_lr, sched_on_updates |
  | weight average | ``timm.utils.ModelEmaV3`` | model_ema, model_ema_decay |
  | precision | ``torch.autocast`` bf16 on CUDA | amp |

The learning rate follows the global batch as DeiT's does: ``lr_base x global batch /
lr_base_size`` (5e-4 x batch / 512), where the global batch is the per-process batch times the
processes (torchrun) times ``grad_accum_steps``. timm's own train.py would scale AdamW's by the
square root instead; this follows DeiT, whose recipe the paper names.

Every field is a flag of ``maitsearch train`` or a key of its ``-c`` file; the training folder's
``config.yaml`` is this dataclass, and ``train -c`` reads it back.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import (AT_LEAST_0, AT_LEAST_1, FRACTION, POSITIVE, PROBABILITY, ConfigError, check_bounds,
                      check_choice, check_field_types, file_kind)

RECIPES = ("light", "deit")
WARMUP_EPOCHS = {"light": 1.0, "deit": 5.0}  # the recipe's own when --warmup-epochs is not given
MIXUP_MODES = ("batch", "pair", "elem")


@dataclass
class TrainConfig:
    """Full training with a mask spec. Defaults follow DeiT (with its lr scaled to the batch)."""

    # ---- what trains, on what
    model: str = "mait_tiny_patch16_224"
    data: str = "digits"
    data_dir: str | None = None
    download: bool = False
    image_size: int | None = None  # None: the model's own (224 for the mait_/deit_ models)
    depth: int | None = None  # None: the model's own; the paper trains 12, 24 and 36
    recipe: str = "light"  # light: the proxies' loop, one process; deit: DeiT's recipe from timm's parts

    # ---- both recipes
    epochs: int = 10
    batch_size: int = 64  # per process: torchrun's N processes train a global batch N times this
    lr: float | None = None  # None: lr_base x global batch / lr_base_size, DeiT's rule
    lr_base: float = 5e-4  # DeiT's lr for a global batch of 512
    lr_base_size: int = 512
    min_lr: float = 1e-5
    warmup_epochs: float | None = None  # None: the recipe's own (light 1, DeiT's 5)
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    drop_path: float = 0.1  # DeiT-tiny's stochastic depth
    grad_clip: float | None = None  # DeiT clips nothing
    alpha_lr_scale: float = 10.0  # soft-mask alphas' lr over the weights' (see ProxyConfig)
    alpha_weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # under torchrun each process takes the GPU of its LOCAL_RANK
    amp: bool = True  # bf16 autocast on CUDA (no loss scaler needed, unlike float16)
    compile: bool = False  # torch.compile on CUDA
    kernel: str = "auto"  # masked heads' kernel: auto (by token count and device), dense, local or flex

    # ---- the deit recipe only: augmentation (timm.data.create_transform)
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"  # DeiT's RandAugment; None: none
    interpolation: str = "bicubic"
    color_jitter: float = 0.3  # DeiT's; timm leaves it out while RandAugment is on
    reprob: float = 0.25  # random erasing
    remode: str = "pixel"
    eval_crop_pct: float = 0.875  # evaluation: resize to size / crop_pct, then a centre crop
    # mixing (timm.data.Mixup); its targets carry the label smoothing above
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    # repeated augmentation (timm.data.distributed_sampler.RepeatAugSampler): each image this many times an epoch,
    # each copy on another process; used with several processes, as in timm's train.py
    aug_repeats: int = 3
    # optimizer (timm.optim.create_optimizer_v2) and schedule (timm.scheduler.create_scheduler_v2)
    opt: str = "adamw"
    opt_eps: float | None = None  # None: the optimizer's own (AdamW: 1e-8, DeiT's)
    sched: str = "cosine"
    warmup_lr: float = 1e-6  # DeiT's
    sched_on_updates: bool = False  # DeiT steps the schedule once an epoch
    # weight average (timm.utils.ModelEmaV3): DeiT-tiny trains with none
    model_ema: bool = False
    model_ema_decay: float = 0.99996  # DeiT's
    # running
    grad_accum_steps: int = 1  # micro-batches per update: a global batch that does not fit one GPU
    workers: int | None = None  # data-loading processes per process; None: 0 on the CPU, up to 8 on CUDA

    @property
    def resolved_lr(self) -> float:
        return self.learning_rate(1)

    def global_batch(self, processes: int = 1) -> int:
        return self.batch_size * processes * self.grad_accum_steps

    def learning_rate(self, processes: int = 1) -> float:
        return self.lr if self.lr is not None else self.lr_base * self.global_batch(processes) / self.lr_base_size

    def lr_rule(self, processes: int = 1) -> str:
        """How the lr came about, for the start line: ``5e-4 x 128 / 512 = 1.25e-04``."""
        if self.lr is not None:
            return f"{self.lr:.3g} (--lr)"
        return f"{self.lr_base:g} x {self.global_batch(processes)} / {self.lr_base_size} = {self.learning_rate(processes):.3g}"

    @property
    def resolved_warmup_epochs(self) -> float:
        return self.warmup_epochs if self.warmup_epochs is not None else WARMUP_EPOCHS.get(self.recipe, 1.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# settings only the deit recipe reads: set on a light run they would do nothing, so they are refused
DEIT_ONLY = tuple(list(FIELDS)[list(FIELDS).index("auto_augment"):])


# fields whose flag has another name (the flags follow timm's train.py)
FLAG_NAMES = {"image_size": "img_size", "auto_augment": "aa", "label_smoothing": "smoothing"}


def flag(name: str) -> str:
    return f"--{FLAG_NAMES.get(name, name).replace('_', '-')}"


# the numbers of both recipes, and of the deit recipe alone
BOTH_BOUNDS = {
    "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "lr_base_size": AT_LEAST_1, "grad_accum_steps": AT_LEAST_1,
    "image_size": AT_LEAST_1, "depth": AT_LEAST_1, "lr": POSITIVE, "lr_base": POSITIVE, "alpha_lr_scale": POSITIVE,
    "min_lr": AT_LEAST_0, "weight_decay": AT_LEAST_0, "alpha_weight_decay": AT_LEAST_0, "warmup_epochs": AT_LEAST_0,
    "grad_clip": (AT_LEAST_0[0], "expected a gradient norm (0 or left out: no clipping)"),
    "label_smoothing": FRACTION, "drop_path": FRACTION,
}
DEIT_BOUNDS = {
    "mixup": AT_LEAST_0, "cutmix": AT_LEAST_0, "warmup_lr": AT_LEAST_0, "color_jitter": AT_LEAST_0,
    "aug_repeats": (AT_LEAST_0[0], "expected 0 (off) or more"), "opt_eps": POSITIVE,
    "reprob": PROBABILITY, "mixup_prob": PROBABILITY, "mixup_switch_prob": PROBABILITY,
    "model_ema_decay": (lambda value: 0 < value < 1, "expected above 0 and below 1 (DeiT's: 0.99996)"),
    "eval_crop_pct": (lambda value: 0 < value <= 1, "expected above 0 and at most 1 (DeiT's: 0.875)"),
}


def check_train_config(config: TrainConfig) -> None:
    """Every setting that can be checked before data loads or a folder is made, one line each."""
    from ..model.kernels import check_training_kernel
    from .loop import resolve_device

    check_choice("--recipe", config.recipe, RECIPES)
    check_model_name(config.model)
    if config.device not in ("auto", "cpu", "cuda") and not str(config.device).startswith("cuda:"):
        raise ConfigError(f"--device {config.device!r}: use auto, cpu, cuda or cuda:N")
    check_training_kernel(config.kernel, resolve_device(config.device).type)
    check_bounds(config, BOTH_BOUNDS, flag)
    if config.recipe == "light":
        given = [name for name in DEIT_ONLY if getattr(config, name) != FIELDS[name].default]
        if given:
            raise ConfigError(f"{flag(given[0])}: a setting of the deit recipe, which this run does not use; "
                              "add --recipe deit")
        return
    check_deit_settings(config)


def check_deit_settings(config: TrainConfig) -> None:
    """The deit recipe's settings, by asking timm's own builders where it can say no."""
    import torch

    check_bounds(config, DEIT_BOUNDS, flag)
    check_choice("--mixup-mode", config.mixup_mode, MIXUP_MODES)
    if (config.mixup > 0 or config.cutmix > 0) and config.batch_size % 2:
        raise ConfigError(f"--batch-size {config.batch_size}: timm's Mixup pairs the images of a batch; "
                          "use an even batch size, or --mixup 0 --cutmix 0")
    from timm.optim import list_optimizers

    if config.opt.lower() not in list_optimizers():
        raise ConfigError(f"--opt {config.opt}: not a timm optimizer; see timm.optim.list_optimizers()")
    if config.sched == "plateau":  # metric-driven state that no checkpoint holds: a resume would not be exact
        raise ConfigError("--sched plateau: its state is not in any checkpoint, so --resume could not be exact; "
                          "use cosine (DeiT's) or another fixed schedule")
    if config.interpolation not in ("bicubic", "bilinear", "nearest", "random", "lanczos", "box", "hamming"):
        raise ConfigError(f"--interpolation {config.interpolation}: use bicubic (DeiT's), bilinear, nearest, random, "
                          "lanczos, box or hamming")
    # timm's own builders, on a stand-in, say whether they take the rest
    try:
        build_transforms(config, 32, (0.5,), (0.5,))
    except (ValueError, AssertionError, KeyError) as err:
        raise ConfigError(f"--aa {config.auto_augment} / --remode {config.remode}: timm's create_transform refuses "
                          f"them ({_first_line(err)})") from None
    try:
        build_scheduler(config, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), updates_per_epoch=1)
    except (ValueError, AssertionError, KeyError) as err:
        raise ConfigError(f"--sched {config.sched}: timm's create_scheduler_v2 refuses it ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().strip("'")
    return text.splitlines()[0] if text else type(err).__name__


def check_model_name(name: str) -> None:
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
        raise ConfigError(f"--model {name}: not a timm model; {hint}")


# ---- reading a config.yaml back (train -c) -----------------------------------------------------
def read_train_config(path: str | Path) -> dict:
    """The settings a ``config.yaml`` holds, checked key by key: an unknown key or a value of the
    wrong type is one line naming the file, as timm's ``-c`` would take it but strict."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"-c {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{path}{f':{mark.line + 1}' if mark else ''}: invalid YAML: "
                          f"{getattr(err, 'problem', err)}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config is a mapping of settings, such as epochs: 300")
    kind = file_kind(data)
    if kind == "mask spec":
        raise ConfigError(f"-c {path}: a mask spec, not a training config; pass it as --spec {path}")
    if kind == "search config":
        raise ConfigError(f"-c {path}: a search config (maitsearch run --config), not a training config; "
                          "train a run's answer with --spec results/<run>/best.yaml")
    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], FIELDS, n=1)
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}"
                          + (f" (did you mean {close[0]}?)" if close else "") + "; see maitsearch train --help")
    check_field_types(TrainConfig, data, str(path))
    return data


# ---- the deit recipe's parts, each from timm ------------------------------------------------------
def build_transforms(config: TrainConfig, image_size: int, mean, std):
    """(training, evaluation) transforms of PIL images: DeiT's, from ``timm.data.create_transform``."""
    from timm.data import create_transform

    from . import timm_compat  # noqa: F401  (RandAugment under Pillow 13)

    train = create_transform(image_size, is_training=True, auto_augment=config.auto_augment,
                             interpolation=config.interpolation, color_jitter=config.color_jitter,
                             re_prob=config.reprob, re_mode=config.remode, re_count=1, mean=tuple(mean),
                             std=tuple(std))
    evaluation = create_transform(image_size, is_training=False, interpolation=config.interpolation,
                                  crop_pct=config.eval_crop_pct, mean=tuple(mean), std=tuple(std))
    return train, evaluation


def build_mixup(config: TrainConfig, num_classes: int):
    """``timm.data.Mixup`` (it smooths the labels it mixes), or None when mixup and cutmix are off."""
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, prob=config.mixup_prob,
                 switch_prob=config.mixup_switch_prob, mode=config.mixup_mode,
                 label_smoothing=config.label_smoothing, num_classes=num_classes)


def build_loss(config: TrainConfig, mixup):
    """Soft targets after Mixup (``SoftTargetCrossEntropy``); without it timm's label smoothing."""
    import torch
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup is not None:
        return SoftTargetCrossEntropy()
    if config.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=config.label_smoothing)
    return torch.nn.CrossEntropyLoss()


def build_train_sampler(config: TrainConfig, dataset, rank: int, world_size: int, generator):
    """Several processes: ``RepeatAugSampler`` (or torch's ``DistributedSampler`` with
    ``aug_repeats 0``) gives each its own share; one process: a seeded shuffle (timm's train.py
    repeats augmentations only across processes too). Call ``set_epoch`` every epoch."""
    from torch.utils.data import DistributedSampler, RandomSampler

    if world_size > 1 and config.aug_repeats > 0:
        from timm.data.distributed_sampler import RepeatAugSampler

        return RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, num_repeats=config.aug_repeats)
    if world_size > 1:
        return DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    return RandomSampler(dataset, generator=generator)


def build_optimizer(config: TrainConfig, model, lr: float):
    """``timm.optim.create_optimizer_v2`` with timm's weight-decay filter; soft-mask alphas, if
    any, in a group of their own as the proxies have them (training/loop.py)."""
    from timm.optim import create_optimizer_v2

    from .loop import parameter_groups

    extra: dict[str, Any] = {} if config.opt_eps is None else {"eps": config.opt_eps}
    return create_optimizer_v2(parameter_groups(model, config.weight_decay, config.alpha_lr_scale,
                                                config.alpha_weight_decay),
                               opt=config.opt, lr=lr, weight_decay=config.weight_decay, **extra)


def build_scheduler(config: TrainConfig, optimizer, updates_per_epoch: int):
    """``timm.scheduler.create_scheduler_v2``: cosine with warmup by default, stepped once an
    epoch (or every update with ``sched_on_updates``); None for ``--sched none``."""
    from timm.scheduler import create_scheduler_v2

    scheduler, _ = create_scheduler_v2(optimizer, sched=config.sched, num_epochs=config.epochs,
                                       min_lr=config.min_lr, warmup_lr=config.warmup_lr,
                                       warmup_epochs=config.resolved_warmup_epochs,
                                       step_on_epochs=not config.sched_on_updates,
                                       updates_per_epoch=updates_per_epoch)
    return scheduler


def build_ema(config: TrainConfig, model):
    """``timm.utils.ModelEmaV3`` of the model's weights, or None."""
    if not config.model_ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=config.model_ema_decay)
