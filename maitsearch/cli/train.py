"""maitsearch train: full training with a found placement."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console


@app.command("train")
def train_command(
        spec: Path = typer.Option(..., "--spec", help="Mask spec YAML (for example results/<run>/best.yaml)."),
        model: str = typer.Option("mait_tiny_patch16_224", help="A timm ViT: mait_* or deit_* names, or any ViT."),
        data: str = typer.Option("digits", help="digits, a derived digit task, a torchvision set, or a folder."),
        data_dir: Optional[Path] = typer.Option(None, help="Where torchvision sets live."),
        download: bool = typer.Option(False, help="Download a torchvision set into --data-dir."),
        epochs: int = typer.Option(10, min=1),
        batch_size: int = typer.Option(64, min=1),
        lr: Optional[float] = typer.Option(None, help="Default: DeiT's 5e-4 x batch / 512."),
        img_size: Optional[int] = typer.Option(None, help="Default: the model's own (224)."),
        depth: Optional[int] = typer.Option(None, help="Blocks, for models that take a depth (mait_*, deit_*, cait_*; the paper: 12, 24, 36)."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        kernel: str = typer.Option("auto", help="Masked heads' kernel: auto, dense, local (O(N*k)) or flex (CUDA)."),
        out: Optional[Path] = typer.Option(None, help="Output folder. Default: results/train/<model>-<spec name>."),
        resume: bool = typer.Option(False, help="Continue from the checkpoint in --out."),
) -> None:
    """Full training of a real-size model with a mask spec applied (checkpoints every epoch)."""
    from ..spec import load_spec
    from ..training import TrainConfig, train
    from ..training.full import check_train_config
    from .progress import training_bars

    mask_spec = load_spec(spec)
    out = out or Path("results") / "train" / f"{model}-{spec.stem}"
    config = TrainConfig(model=model, data=data, data_dir=str(data_dir) if data_dir else None, download=download,
                         image_size=img_size, depth=depth, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         device=device, kernel=kernel)
    check_train_config(config)  # before a progress bar is drawn
    with training_bars(console, label=f"train {model}") as bars:
        metrics = train(mask_spec, config, out, resume=resume, on_event=bars)
    top1 = metrics.get("val_top1")
    console.print(f"val top-1 {'-' if top1 is None else f'{top1 * 100:.2f}%'} after {epochs} epochs; "
                  f"checkpoint, metrics.jsonl (fractions) and spec in {out}", markup=False)
