"""What every proxy trial and the light full-training recipe share: one epoch, one evaluation,
the optimizer and its schedule, autocast and the per-epoch data seed.

In the spirit of DeiT's ``engine.py``: ``train_one_epoch`` and ``evaluate`` return plain dicts of
metrics and print nothing.

This loop stays as it is. The optimizer already comes from timm's ``create_optimizer_v2`` and
the schedule from timm's ``CosineLRScheduler``, stepped per update; moving the proxies to the
DeiT recipe's builders (training/recipes.py: ``create_scheduler_v2``, timm's data pipeline)
would change every number ``fit`` returns, and with them every trial-cache key and every
committed run's resume. The full trainer's deit recipe uses timm's builders throughout.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..events import StepDone


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, loss: float):
        super().__init__(f"non-finite loss {loss} at step {step}")
        self.step, self.loss = step, loss


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when there is a GPU), ``cpu`` or ``cuda[:N]``; a GPU that is not there is a
    one-line ``ConfigError``, not a CUDA traceback halfway through."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name}: no CUDA GPU on this machine; use auto or cpu")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"device {name!r}: use auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name}: cuda:{device.index} is not there; this machine has "
                              f"{torch.cuda.device_count()} GPU(s)")
        return device
    raise ConfigError(f"device {name!r}: use auto, cpu or cuda")


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA; CPUs train in float32 (bf16 there is slower and less exact)."""
    return torch.bfloat16 if (amp and device.type == "cuda") else None


def maybe_compile(model, enabled: bool, device: torch.device):
    """The model to train with: compiled on CUDA when asked, else the model itself."""
    return torch.compile(model) if (enabled and device.type == "cuda") else model


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch's shuffling depends only on (seed, epoch): a resumed run sees the same data."""
    return seed * 100_003 + epoch


def build_optimizer(model, *, lr: float, weight_decay: float, min_lr: float, warmup_epochs: float,
                    epochs: int, steps_per_epoch: int, alpha_lr_scale: float = 1.0,
                    alpha_weight_decay: float = 0.0):
    """AdamW without weight decay on norms, biases and embeddings (timm's filter), and a per-step
    cosine schedule with linear warmup from lr / 1000.

    Soft-mask logits (``soft_logit``), when the model has any, get a group of their own with
    ``alpha_lr_scale`` times the learning rate and ``alpha_weight_decay``: at the weights' rate
    an alpha moved by at most 0.02 in a 60-epoch proxy, so every head kept its initial alpha.
    The schedule scales their rate with the others' (timm's ``lr_scale``)."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(parameter_groups(model, weight_decay, alpha_lr_scale, alpha_weight_decay),
                                    opt="adamw", lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(warmup_epochs * steps_per_epoch), total - 1)
    scheduler = CosineLRScheduler(optimizer, t_initial=total, lr_min=min_lr, warmup_t=warmup,
                                  warmup_lr_init=lr * 1e-3, warmup_prefix=False, t_in_epochs=False)
    return optimizer, scheduler


def parameter_groups(model, weight_decay: float, alpha_lr_scale: float, alpha_weight_decay: float):
    """What ``create_optimizer_v2`` optimizes: the model itself (timm then leaves norms, biases and
    embeddings out of weight decay), or, when it has soft-mask alphas, timm's decay groups with
    the alphas apart at their own lr scale and weight decay (see ``build_optimizer``)."""
    from timm.optim import param_groups_weight_decay

    alphas = [p for name, p in model.named_parameters() if name.endswith("soft_logit")]
    if not alphas:  # the exact path of a plain timm optimizer, so unmasked and hard runs are unchanged
        return model
    skip = set(getattr(model, "no_weight_decay", lambda: ())())
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=skip)
    alpha_ids = {id(p) for p in alphas}
    for group in groups:
        group["params"] = [p for p in group["params"] if id(p) not in alpha_ids]
    groups.append({"params": alphas, "weight_decay": alpha_weight_decay, "lr_scale": alpha_lr_scale})
    return groups


def train_one_epoch(model, batches: Iterable, optimizer, scheduler, *, device: torch.device, epoch: int = 0,
                    label_smoothing: float = 0.0, grad_clip: float | None = None,
                    autocast: torch.dtype | None = None, first_step: int = 0,
                    on_event: Callable | None = None) -> dict:
    """One pass over ``batches``; raises ``NonFiniteLoss`` at the first non-finite loss."""
    model.train()
    step, seen, loss_sum, correct = first_step, 0, 0.0, 0
    start = time.perf_counter()
    for images, labels in batches:
        step += 1
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLoss(step, loss_value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step_update(step)
        seen += len(labels)
        loss_sum += loss_value * len(labels)
        correct += (logits.argmax(-1) == labels).sum().item()
        if on_event is not None:
            on_event(StepDone(epoch=epoch, step=step, loss=loss_value))
    seconds = time.perf_counter() - start
    return {"loss": loss_sum / max(seen, 1), "top1": correct / max(seen, 1), "images_per_s": seen / seconds,
            "steps": step - first_step, "seconds": seconds}


@torch.no_grad()
def evaluate(model, batches: Iterable, *, autocast: torch.dtype | None = None,
             parts: Mapping[str, tuple[int, int]] | None = None) -> dict:
    """Top-1 and loss over ``batches``; with ``parts`` ({name: (first label, end label)}), also
    each part's top-1 under ``top1_by_part``."""
    model.eval()
    seen, loss_sum, correct = 0, 0.0, 0
    part_right = {name: 0 for name in parts or {}}
    part_seen = dict(part_right)
    start = time.perf_counter()
    for images, labels in batches:
        with torch.autocast(images.device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        right = logits.argmax(-1) == labels
        correct += right.sum().item()
        seen += len(labels)
        for name, (low, high) in (parts or {}).items():
            inside = (labels >= low) & (labels < high)
            part_right[name] += right[inside].sum().item()
            part_seen[name] += inside.sum().item()
    seconds = time.perf_counter() - start
    out = {"top1": correct / max(seen, 1), "loss": loss_sum / max(seen, 1), "images_per_s": seen / seconds,
           "images": seen}
    if parts:
        out["top1_by_part"] = {name: part_right[name] / max(part_seen[name], 1) for name in parts}
    return out
