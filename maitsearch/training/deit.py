"""The deit recipe: DeiT's training from timm's parts (training/recipes.py builds each), in one
process or many (training/distributed.py).

As in DeiT's ``engine.py``, ``train_one_epoch`` and ``evaluate`` return plain dicts of metrics
and print nothing. ``train_deit`` runs them over a training folder (training/checkpoints.py).

Every epoch's randomness (the sampler's order, timm's augmentations, Mixup's draws, stochastic
depth) is seeded from (seed, epoch, rank) alone when the epoch starts, so a resumed run draws
what the uninterrupted one drew, on every process, without keeping random states.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, ResumeError
from ..events import EpochDone, EventFn, StepDone, TrainingPlan, TrainingStarted
from ..spec import MaskSpec
from . import distributed
from .checkpoints import (CHECKPOINT, check_resume, find_checkpoint, plain, read_metrics, save_checkpoint,
                          save_weights, start_folder, weights_digest, write_metrics)
from .loop import NonFiniteLoss, autocast_dtype, epoch_seed, maybe_compile
from .recipes import (TrainConfig, build_ema, build_loss, build_mixup, build_optimizer, build_scheduler,
                      build_train_sampler, build_transforms)


@dataclass
class Trainer:
    """What one training holds: the model and the timm parts that train it."""

    model: torch.nn.Module  # the bare model: state dicts, evaluation
    train_model: torch.nn.Module  # what trains: wrapped in DistributedDataParallel, and compiled if asked
    optimizer: Any
    scheduler: Any  # a timm scheduler, or None (--sched none)
    mixup: Any  # timm.data.Mixup, or None
    loss: torch.nn.Module
    ema: Any  # timm.utils.ModelEmaV3, or None
    device: torch.device
    autocast: torch.dtype | None = None
    grad_accum_steps: int = 1
    grad_clip: float | None = None
    sched_on_updates: bool = False
    updates: int = 0  # optimizer updates so far
    timings: list[float] = field(default_factory=list)


def build_trainer(config: TrainConfig, model: torch.nn.Module, device: torch.device, num_classes: int, *,
                  updates_per_epoch: int, processes: distributed.Processes = distributed.Processes(),
                  state: dict | None = None) -> Trainer:
    """The recipe's parts around ``model`` (on ``device``), restored from ``state`` on a resume."""
    if state is not None:
        model.load_state_dict(state["model"])
    train_model = maybe_compile(distributed.wrap(model, processes, device), config.compile, device)
    optimizer = build_optimizer(config, model, config.learning_rate(processes.world_size))
    scheduler = build_scheduler(config, optimizer, updates_per_epoch)
    mixup = build_mixup(config, num_classes)
    ema = build_ema(config, model)
    trainer = Trainer(model, train_model, optimizer, scheduler, mixup, build_loss(config, mixup).to(device), ema,
                      device, autocast_dtype(config.amp, device), config.grad_accum_steps, config.grad_clip,
                      config.sched_on_updates)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        trainer.updates = state["updates"]
        if ema is not None:
            ema.load_state_dict(state["ema"])
    return trainer


def seed_epoch(seed: int, epoch: int, rank: int) -> int:
    """Seed python's, numpy's and torch's generators for one epoch of one process; returns the
    seed, which also seeds the loader (its order and its workers' augmentations)."""
    value = (epoch_seed(seed, epoch) * 1_000_003 + rank) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return value


def train_one_epoch(trainer: Trainer, loader, *, epoch: int = 0, processes=distributed.Processes(),
                    on_event: EventFn | None = None) -> dict:
    """One pass over ``loader``: Mixup, the loss, gradients accumulated over ``grad_accum_steps``
    micro-batches (synchronised across processes only on the last), an update, the EMA and the
    schedule. Raises ``NonFiniteLoss`` at the first non-finite loss."""
    trainer.train_model.train()
    batches, accum = len(loader), trainer.grad_accum_steps
    seen, loss_sum = 0, 0.0
    start = time.perf_counter()
    for index, (images, labels) in enumerate(loader):
        images, labels = images.to(trainer.device, non_blocking=True), labels.to(trainer.device, non_blocking=True)
        loss_value = train_step(trainer, images, labels, micro=index % accum,
                                group=min(accum, batches - index // accum * accum))
        seen += len(labels)
        loss_sum += loss_value * len(labels)
        if on_event is not None:
            on_event(StepDone(epoch=epoch, step=epoch * batches + index + 1, loss=loss_value))
    if trainer.scheduler is not None and not trainer.sched_on_updates:
        trainer.scheduler.step(epoch + 1)
    seconds = time.perf_counter() - start
    total_seen, total_loss = distributed.sum_over([seen, loss_sum], processes, trainer.device)
    return {"loss": total_loss / max(total_seen, 1), "images_per_s": total_seen / seconds, "seconds": seconds,
            "updates": trainer.updates}


def train_step(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, *, micro: int = 0,
               group: int = 1) -> float:
    """Micro-batch ``micro`` of a group of ``group``: the forward and backward pass, and on the
    group's last micro-batch the update. Returns the loss."""
    targets = labels
    if trainer.mixup is not None:
        images, targets = trainer.mixup(images, labels)
    last = micro + 1 == group
    sync = contextlib.nullcontext() if last or not hasattr(trainer.train_model, "no_sync") else trainer.train_model.no_sync()
    with sync:
        with torch.autocast(trainer.device.type, dtype=trainer.autocast, enabled=trainer.autocast is not None):
            loss = trainer.loss(trainer.train_model(images), targets)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLoss(trainer.updates, loss_value)
        (loss / group).backward()
    if last:
        if trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.grad_clip)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.updates += 1
        if trainer.ema is not None:
            trainer.ema.update(trainer.model, step=trainer.updates)
        if trainer.scheduler is not None and trainer.sched_on_updates:
            trainer.scheduler.step_update(trainer.updates)
    return loss_value


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, *, device: torch.device, autocast: torch.dtype | None = None,
             processes=distributed.Processes()) -> dict:
    """Top-1 and loss of the bare model over this process's share of ``loader``, summed over all."""
    model.eval()
    seen, loss_sum, correct = 0, 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images)
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += (logits.argmax(-1) == labels).sum().item()
        seen += len(labels)
    seen, loss_sum, correct = distributed.sum_over([seen, loss_sum, correct], processes, device)
    return {"top1": correct / max(seen, 1), "loss": loss_sum / max(seen, 1), "images": int(seen)}


def loader_workers(config: TrainConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    if device.type != "cuda":
        return 0  # the CPU trains with the same cores the workers would take
    import os

    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, (os.cpu_count() or 1) // per_node))


def train_deit(spec: MaskSpec, config: TrainConfig, out: Path, *, resume: bool, emit: EventFn) -> dict:
    """Train with the deit recipe into ``out``; returns the last epoch's metrics. Called on every
    process of a torchrun; only rank 0 writes files and emits events."""
    from ..data.datasets import load_image_sets
    from .full import build_model, model_image_size

    processes, device = distributed.start(config.device)
    try:
        emit = emit if processes.main else (lambda event: None)
        state = _agreed_checkpoint(out, resume, processes, device)
        if state is not None:
            check_resume(state, out / CHECKPOINT, config, spec, TrainConfig())
            saved_world = state.get("world_size", 1)
            if saved_world != processes.world_size:
                raise ResumeError(f"--resume: {out / CHECKPOINT} was written by {saved_world} process(es) and this "
                                  f"run has {processes.world_size}; the global batch, the lr and the data shards "
                                  f"follow the count, so resume with {saved_world} (torchrun --nproc_per_node x "
                                  "--nnodes), or start another --out")
        image_size = config.image_size or model_image_size(config.model)
        sets = load_image_sets(config.data, data_dir=config.data_dir, download=config.download, seed=config.seed,
                               transforms=lambda mean, std: build_transforms(config, image_size, mean, std))
        torch.manual_seed(config.seed)  # the same initial weights on every process (DDP broadcasts rank 0's too)
        model = build_model(config, spec, sets.num_classes, sets.in_chans).to(device)
        sampler = build_train_sampler(config, sets.train, processes.rank, processes.world_size,
                                      torch.Generator().manual_seed(config.seed))
        batches = len(sampler) // config.batch_size
        if batches < 1:
            raise ConfigError(f"--batch-size {config.batch_size}: more than the {len(sampler)} training images each "
                              f"of the {processes.world_size} process(es) sees an epoch; use a smaller batch")
        updates_per_epoch = math.ceil(batches / config.grad_accum_steps)
        trainer = build_trainer(config, model, device, sets.num_classes, updates_per_epoch=updates_per_epoch,
                                processes=processes, state=state)
        first_epoch = state["epoch"] if state is not None else 0
        if trainer.scheduler is not None and first_epoch:
            if config.sched_on_updates:
                trainer.scheduler.step_update(trainer.updates)
            else:
                trainer.scheduler.step(first_epoch)
        history = read_metrics(out, first_epoch) if (state is not None and processes.main) else []
        if state is None and processes.main:
            start_folder(out, spec, config)
        val_loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(sets.val, distributed.shard(len(sets.val), processes)), batch_size=256,
            num_workers=loader_workers(config, device), pin_memory=device.type == "cuda")
        emit(TrainingPlan(recipe="deit", processes=processes.world_size, backend=processes.backend,
                          device=str(device), batch_size=config.batch_size, grad_accum_steps=config.grad_accum_steps,
                          global_batch=config.global_batch(processes.world_size),
                          lr=config.learning_rate(processes.world_size), lr_rule=config.lr_rule(processes.world_size),
                          epochs=config.epochs, first_epoch=first_epoch))
        emit(TrainingStarted(epochs=config.epochs, steps_per_epoch=batches, first_epoch=first_epoch))
        metrics: dict = history[-1] if history else {}
        for epoch in range(first_epoch, config.epochs):
            generator = torch.Generator().manual_seed(seed_epoch(config.seed, epoch, processes.rank))
            if hasattr(sampler, "set_epoch"):  # the same order on every process: each takes its share
                sampler.set_epoch(epoch_seed(config.seed, epoch))
            else:
                sampler.generator = generator
            loader = torch.utils.data.DataLoader(sets.train, batch_size=config.batch_size, sampler=sampler,
                                                 num_workers=loader_workers(config, device), drop_last=True,
                                                 pin_memory=device.type == "cuda", generator=generator)
            stats = train_one_epoch(trainer, loader, epoch=epoch, processes=processes, on_event=emit)
            val = evaluate(trainer.model, val_loader, device=device, autocast=trainer.autocast, processes=processes)
            metrics = {"epoch": epoch, "train_loss": stats["loss"], "val_loss": val["loss"], "val_top1": val["top1"],
                       "lr": trainer.optimizer.param_groups[0]["lr"], "train_images_per_s": stats["images_per_s"],
                       "updates": trainer.updates}
            if trainer.ema is not None:
                ema = evaluate(trainer.ema.module, val_loader, device=device, autocast=trainer.autocast,
                               processes=processes)
                metrics.update(val_top1_ema=ema["top1"], val_loss_ema=ema["loss"])
            # DDP keeps every process's weights equal to the bit; a process that drifted would
            # train on silently, so each epoch they compare (and the checkpoint keeps the digests)
            digests = distributed.gather(weights_digest(trainer.model.state_dict()), processes, device)
            if len(set(digests)) > 1:
                raise RuntimeError(f"epoch {epoch}: the processes' weights differ (digests {digests}); "
                                   "the distributed training is broken, so it stops here")
            if processes.main:
                history.append(metrics)
                save_checkpoint(out / CHECKPOINT, {
                    "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                    **({"ema": trainer.ema.state_dict()} if trainer.ema is not None else {}),
                    "epoch": epoch + 1, "updates": trainer.updates, "world_size": processes.world_size,
                    "recipe": "deit", "rank_digests": digests, "config": plain(config), "spec": spec.to_yaml()})
                write_metrics(out, history)
            emit(EpochDone(epoch=epoch, metrics=metrics))
        if processes.main:
            save_weights(trainer.model, out, sets)
        return metrics
    finally:
        distributed.stop(processes)


def _agreed_checkpoint(out: Path, resume: bool, processes, device) -> dict | None:
    """The checkpoint to resume from, which every process must see alike: on several nodes
    ``--out`` is a folder they share."""
    present = (out / CHECKPOINT).exists()
    low, high = distributed.agree(int(present), processes, device)
    if low != high:
        raise ResumeError(f"--out {out}: some processes see {out / CHECKPOINT} and some do not; on several nodes "
                          "--out must be a folder every node shares")
    return find_checkpoint(out, resume)
