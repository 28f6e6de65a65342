"""maitsearch train: full training with a found placement, in one process or under torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console

NOT_SETTINGS = ("ctx", "spec", "config", "out", "resume")


@app.command("train")
def train_command(
        ctx: typer.Context,
        spec: Optional[str] = typer.Option(None, "--spec", help="Mask spec YAML (for example "
                                           "results/<run>/best.yaml), a preset (sch2; none for the unmasked baseline) "
                                           "or compact text; with -c, default: the spec.yaml beside it."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="A training config YAML, such as the "
                                              "config.yaml a training wrote; flags given here override it."),
        recipe: str = typer.Option("light", help="light (the proxies' loop, one process) or deit (DeiT's recipe from "
                                                 "timm's parts; torchrun for several processes)."),
        model: str = typer.Option("mait_tiny_patch16_224", help="A timm ViT: mait_* or deit_* names, or any ViT."),
        data: str = typer.Option("digits", help="digits, a derived digit task, a torchvision set, or a folder."),
        data_dir: Optional[Path] = typer.Option(None, help="Where torchvision sets live."),
        download: bool = typer.Option(False, help="Download a torchvision set into --data-dir."),
        epochs: int = typer.Option(10, min=1),
        batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Per process (torchrun: the global "
                                       "batch is this x processes x --grad-accum-steps)."),
        lr: Optional[float] = typer.Option(None, help="Default: --lr-base x global batch / 512 (DeiT's rule)."),
        lr_base: float = typer.Option(5e-4, help="The lr of a global batch of 512."),
        min_lr: float = typer.Option(1e-5),
        warmup_epochs: Optional[float] = typer.Option(None, help="Default: the recipe's (light 1, deit 5)."),
        weight_decay: float = typer.Option(0.05),
        smoothing: float = typer.Option(0.1, help="Label smoothing."),
        drop_path: float = typer.Option(0.1, help="Stochastic depth rate."),
        grad_clip: Optional[float] = typer.Option(None, help="Clip the gradient norm (default: no clipping)."),
        img_size: Optional[int] = typer.Option(None, help="Default: the model's own (224)."),
        depth: Optional[int] = typer.Option(None, help="Blocks, for models that take a depth (mait_*, deit_*, cait_*; "
                                                       "the paper: 12, 24, 36; mait_* default: the spec's layers)."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (torchrun: each process its LOCAL_RANK's "
                                                "GPU)."),
        amp: bool = typer.Option(True, help="bf16 autocast on CUDA."),
        torch_compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the model on CUDA "
                                           "(the CPU trains eagerly: compiling there costs more than it saves)."),
        kernel: str = typer.Option("auto", help="Masked heads' kernel: auto, dense, local (O(N*k)) or flex (CUDA)."),
        aa: Optional[str] = typer.Option("rand-m9-mstd0.5-inc1", help="deit: RandAugment policy ('none' for none)."),
        reprob: float = typer.Option(0.25, help="deit: random erasing probability."),
        mixup: float = typer.Option(0.8, help="deit: mixup alpha (0: off)."),
        cutmix: float = typer.Option(1.0, help="deit: cutmix alpha (0: off)."),
        aug_repeats: int = typer.Option(3, help="deit: repeated augmentation over several processes (0: off)."),
        opt: str = typer.Option("adamw", help="deit: a timm optimizer name."),
        sched: str = typer.Option("cosine", help="deit: a timm scheduler name."),
        model_ema: bool = typer.Option(False, help="deit: keep an EMA of the weights (timm's ModelEmaV3)."),
        model_ema_decay: float = typer.Option(0.99996, help="deit: the EMA's decay."),
        grad_accum_steps: int = typer.Option(1, min=1, help="deit: micro-batches per update."),
        workers: Optional[int] = typer.Option(None, min=0, help="deit: data-loading processes per process "
                                                                "(default: 0 on the CPU, up to 8 on CUDA)."),
        out: Optional[Path] = typer.Option(None, help="Output folder. Default: results/train/<model>-<spec name> "
                                                       "(<model>-<run>-best for a run's best.yaml)."),
        resume: bool = typer.Option(False, help="Continue from the checkpoint in --out (none there yet: a fresh "
                                                 "start, so a job that may be requeued always passes it)."),
) -> None:
    """Full training of a real-size model with a mask spec applied (checkpoints every epoch)."""
    from ..errors import ConfigError, MaitsearchError
    from ..training import TrainConfig, train
    from ..training.distributed import launched
    from ..training.full import placement_for_model
    from ..training.recipes import FLAG_NAMES, check_train_config, read_train_config

    main = launched().main
    try:
        values = read_train_config(config) if config is not None else {}
        given = {name: value for name, value in ctx.params.items()
                 if name not in NOT_SETTINGS and _from_command_line(ctx, name)}
        field_of = {name: field for field, name in FLAG_NAMES.items()} | {"torch_compile": "compile"}
        values.update({field_of.get(name, name): value for name, value in given.items()})
        for name in ("data_dir",):
            if values.get(name) is not None:
                values[name] = str(values[name])
        if isinstance(values.get("auto_augment"), str) and values["auto_augment"].lower() == "none":
            values["auto_augment"] = None
        settings = TrainConfig(**values)
        if spec is None:
            beside = config.parent / "spec.yaml" if config is not None else None
            if beside is None or not beside.is_file():
                raise ConfigError("--spec: required (a mask spec YAML such as results/<run>/best.yaml)")
            spec = beside
        check_train_config(settings)  # before a model is built or a progress bar drawn
        mask_spec, settings = placement_for_model(spec, settings)
        out = out or default_out(settings.model, spec)
        if not main:  # rank 0 alone draws and prints
            metrics = train(mask_spec, settings, out, resume=resume)
            return
        from .progress import training_bars

        with training_bars(console, label=f"train {settings.model}") as bars:
            metrics = train(mask_spec, settings, out, resume=resume, on_event=lambda event: _show(event, bars))
    except MaitsearchError:
        if not main:  # every process hits the same error: rank 0 says it once
            raise typer.Exit(2)
        raise
    top1, epochs = metrics.get("val_top1"), settings.epochs
    accuracy = "-" if top1 is None else f"{top1 * 100:.2f}%"
    console.print(f"val top-1 {accuracy} after {epochs} epoch{'s' * (epochs != 1)}; "
                  f"checkpoint, metrics.jsonl (fractions), spec and model.safetensors + config.json (timm's layout) "
                  f"in {out}", markup=False)


def default_out(model: str, spec: str | Path) -> Path:
    """results/train/<model>-<spec name>; a spec in a run folder (its best.yaml or answer.yaml)
    is named by its run too, so two runs' answers do not meet in one folder."""
    from ..runs.reading import TRAININGS

    path = Path(spec)
    name = f"{path.parent.name}-{path.stem}" if (path.parent / "search.yaml").is_file() else path.stem
    return Path("results") / TRAININGS / f"{model}-{name}"


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _show(event, bars) -> None:
    from ..events import TrainingPlan

    if isinstance(event, TrainingPlan):
        console.print(plan_line(event), markup=False)
    else:
        bars(event)


def plan_line(plan) -> str:
    """``deit recipe in 2 processes (gloo, cpu): global batch 128 = 64 per process x 2 processes
    x 1 micro-batch; lr 0.0005 x 128 / 512 = 0.000125``."""
    where = f"{plan.backend}, {plan.device}" if plan.backend else plan.device
    processes = f"{plan.processes} process{'es' if plan.processes != 1 else ''}"
    if plan.processes == 1 and plan.grad_accum_steps == 1:
        batch = f"batch {plan.global_batch}"
    else:
        batch = (f"global batch {plan.global_batch} = {plan.batch_size} per process x {processes} x "
                 f"{plan.grad_accum_steps} micro-batch{'es' if plan.grad_accum_steps != 1 else ''}")
    if plan.first_epoch >= plan.epochs:
        resumed = f"; all {plan.epochs} epoch{'s' * (plan.epochs != 1)} already trained, nothing left to train"
    else:
        resumed = f"; resuming at epoch {plan.first_epoch + 1}" if plan.first_epoch else ""
    return f"{plan.recipe} recipe in {processes} ({where}): {batch}; lr {plan.lr_rule}{resumed}"
