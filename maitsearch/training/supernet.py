"""A weight-sharing supernet of the proxy (single-path one-shot, SPOS), and scores with its
inherited weights (docs/DESIGN.md, section 8).

``train_supernet`` trains one proxy in which every step runs the placement that
``placement_at(step)`` names: the masks are applied to the shared weights before each batch
(``apply_mask_spec`` reconfigures the heads, it copies no weights), so a step trains exactly the
sub-network of that placement, hard masks included. Weights are the plain ViT's (a hard mask owns
no parameter), so a supernet's state dict loads into any proxy of its shape. Training is
checkpointed after every epoch and resumes exactly: the data order and the placements depend only
on (seed, epoch) and (step), not on what ran before.

``inherited_scores`` reads a placement's accuracy off the supernet's weights in one forward pass,
optionally after a short fine-tune of a copy with the placement fixed. ``held_out`` makes the
split those scores are read on: a part of the training images that no supernet trains on.
Like ``proxy.fit``, nothing here knows of strategies or run folders beyond the paths it is given.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from .. import atomic
from ..config import ProxyConfig
from ..data import ImageData
from ..data.images import random_crop, stratified_split, to_uint8
from ..events import EpochDone, EventFn, TrainingStarted, ignore
from ..model import apply_mask_spec
from ..spec import MaskSpec, preset
from .loop import (NonFiniteLoss, autocast_dtype, build_optimizer, epoch_seed, evaluate, resolve_device,
                   train_one_epoch)
from .proxy import TrialResult, build_proxy_model

SEARCH_SPLIT = "search"  # the held-out training images that scores are read on
HOLDOUT_SEED = 0  # one held-out set per dataset, whatever the supernet's seed: every supernet is scored on it
# A fine-tune starts from weights already trained to the end of a cosine schedule; at the proxy's
# full rate a few steps would undo them, at its final rate they would not move.
FINETUNE_LR_SCALE = 0.1


def held_out(data: ImageData, fraction: float, views: int = 1) -> ImageData:
    """``data`` with ``fraction`` of its training images (stratified by class) moved out of
    ``train`` into the ``search`` split, each in ``views`` copies: the first as it is, the others
    shifted and flipped as training augments (``crop_padding``, ``flip``), drawn once with a fixed
    seed. Without augmentation every copy would be the same image, so there is one view."""
    images, labels = data.splits["train"]
    index = stratified_split(labels, {"train": 1.0 - fraction, SEARCH_SPLIT: fraction}, seed=HOLDOUT_SEED)
    kept, held = index["train"], index[SEARCH_SPLIT]
    if not len(held) or not len(kept):
        raise ValueError(f"holdout {fraction}: leaves {len(kept)} training and {len(held)} held-out images")
    copies = [images[held]]
    augmented = data.crop_padding > 0 or data.flip
    generator = torch.Generator().manual_seed(HOLDOUT_SEED)
    for _ in range(views - 1 if augmented else 0):
        x = images[held].float().div(255) if images.dtype == torch.uint8 else images[held].float()
        if data.crop_padding:
            x = random_crop(x, data.crop_padding, generator)
        if data.flip:
            flips = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        copies.append(to_uint8(x) if images.dtype == torch.uint8 else x)
    splits = {**data.splits, "train": (images[kept], labels[kept]),
              SEARCH_SPLIT: (torch.cat(copies), labels[held].repeat(len(copies)))}
    return dataclasses.replace(data, splits=splits)


def _placed(model, batches: Iterable, placement_at: Callable[[int], MaskSpec], first_step: int):
    """The batches, with the step's placement applied to the model just before each one."""
    for offset, batch in enumerate(batches):
        apply_mask_spec(model, placement_at(first_step + offset))
        yield batch


def train_supernet(placement_at: Callable[[int], MaskSpec], config: ProxyConfig, data: ImageData, *, epochs: int,
                   out: str | Path, on_event: EventFn | None = None) -> TrialResult:
    """Train a supernet on ``data``'s ``train`` split for ``epochs`` with the proxy's recipe (one
    cosine schedule over all of them) and save its state dict to ``out``. After every epoch the
    model and optimizer go to ``<out stem>.partial.pt``, and a call that finds one goes on from
    there. The result has the epochs, steps, seconds (over every session) and per-epoch
    ``history``; its status is complete or nan_loss. ``config.compile`` is ignored: the graph
    changes at every step."""
    start = time.perf_counter()
    out = Path(out)
    partial = out.with_name(f"{out.stem}.partial.pt")
    emit = on_event or ignore
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_proxy_model(placement_at(0), config, data).to(device)
    steps_per_epoch = math.ceil(data.size("train") / config.batch_size)
    optimizer, scheduler = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                                           min_lr=config.min_lr, warmup_epochs=config.warmup_epochs, epochs=epochs,
                                           steps_per_epoch=steps_per_epoch)
    autocast = autocast_dtype(config.amp, device)
    first, spent, history = 0, 0.0, []
    if partial.exists():
        state = torch.load(partial, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first, spent, history = int(state["epoch"]), float(state["seconds"]), list(state["history"])
    scheduler.step_update(first * steps_per_epoch)
    result = TrialResult(status="complete", epochs=first, steps=first * steps_per_epoch, history=history)
    emit(TrainingStarted(epochs=epochs, steps_per_epoch=steps_per_epoch, first_epoch=first))
    try:
        for epoch in range(first, epochs):
            first_step = epoch * steps_per_epoch
            batches = data.batches("train", config.batch_size, shuffle=True, seed=epoch_seed(config.seed, epoch),
                                   device=device)
            stats = train_one_epoch(model, _placed(model, batches, placement_at, first_step), optimizer, scheduler,
                                    device=device, epoch=epoch, label_smoothing=config.label_smoothing,
                                    grad_clip=config.grad_clip, autocast=autocast, first_step=first_step,
                                    on_event=emit)
            metrics = {"epoch": epoch, "train_loss": stats["loss"], "train_top1": stats["top1"],
                       "lr": optimizer.param_groups[0]["lr"]}
            history.append(metrics)
            result.epochs, result.steps, result.train_loss = epoch + 1, first_step + stats["steps"], stats["loss"]
            atomic.save_torch(partial, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "epoch": epoch + 1, "seconds": spent + time.perf_counter() - start,
                                        "history": history})
            emit(EpochDone(epoch=epoch, metrics=metrics))
    except NonFiniteLoss as err:
        result.status, result.reason = "nan_loss", str(err)
    else:
        atomic.save_torch(out, model.state_dict())
        partial.unlink(missing_ok=True)
    result.seconds = spent + time.perf_counter() - start
    return result


def load_supernet(path: str | Path, config: ProxyConfig, data: ImageData) -> torch.nn.Module:
    """A proxy of ``config``'s shape holding a trained supernet's weights, in eval mode."""
    model = build_proxy_model(preset("none", config.layers, config.heads), config, data)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(resolve_device(config.device)).eval()


@torch.no_grad()
def inherited_logits(model: torch.nn.Module, spec: MaskSpec, images: torch.Tensor) -> torch.Tensor:
    """The logits of the sub-network ``spec`` names, with the supernet's weights as they are."""
    apply_mask_spec(model, spec)
    return model.eval()(images)


def finetuned(model: torch.nn.Module, spec: MaskSpec, config: ProxyConfig, data: ImageData, *, steps: int,
              seed: int) -> torch.nn.Module:
    """A copy of the supernet with ``spec`` fixed, trained ``steps`` more steps on the ``train``
    split at a tenth of the proxy's lr (constant), shuffled by ``seed``; the supernet is untouched."""
    device = next(model.parameters()).device
    tuned = build_proxy_model(spec, config, data).to(device)
    tuned.load_state_dict(model.state_dict())
    lr = config.lr * FINETUNE_LR_SCALE
    optimizer, scheduler = build_optimizer(tuned, lr=lr, weight_decay=config.weight_decay, min_lr=lr, warmup_epochs=0,
                                           epochs=1, steps_per_epoch=steps)
    epochs = itertools.count()
    batches = itertools.chain.from_iterable(
        data.batches("train", config.batch_size, shuffle=True, seed=epoch_seed(seed, epoch), device=device)
        for epoch in epochs)
    train_one_epoch(tuned, itertools.islice(batches, steps), optimizer, scheduler, device=device,
                    label_smoothing=config.label_smoothing, grad_clip=config.grad_clip)
    return tuned.eval()


def inherited_scores(models: Sequence[torch.nn.Module], specs: Sequence[MaskSpec], config: ProxyConfig,
                     data: ImageData, *, finetune_steps: int = 0, seed: int = 0) -> list[dict]:
    """Per placement, the ``search`` split's top-1 and loss (cross-entropy, no smoothing) under
    each supernet, and the seconds it took: ``{"top1": [...], "loss": [...], "seconds": s}``.
    With ``finetune_steps``, each score is read off a fine-tuned copy instead."""
    device = next(models[0].parameters()).device
    batches = list(data.batches(SEARCH_SPLIT, 512, device=device))
    autocast = autocast_dtype(config.amp, device)
    rows = []
    for spec in specs:
        start = time.perf_counter()
        top1, loss = [], []
        for model in models:
            scored = finetuned(model, spec, config, data, steps=finetune_steps, seed=seed) if finetune_steps else model
            apply_mask_spec(scored, spec)
            measured = evaluate(scored, batches, autocast=autocast)
            top1.append(measured["top1"])
            loss.append(measured["loss"])
        rows.append({"top1": top1, "loss": loss, "seconds": time.perf_counter() - start})
    return rows

