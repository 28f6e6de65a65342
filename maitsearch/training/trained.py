"""A trained model from what ``train`` leaves, or from a spec plus weights: what ``export`` opens.

- a folder with ``model.safetensors`` + ``config.json`` (``train`` writes them at the end; so
  does ``model.export.save_pretrained``);
- an older ``train`` folder with only ``checkpoint.pt``, ``config.yaml`` and ``spec.yaml``;
- a spec with a timm model name and, optionally, weights (.safetensors, or a .pt state dict or
  ``train`` checkpoint, read with ``weights_only=True``); without weights, the initial ones.

Returns the model in eval mode and a line saying where its weights came from.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from ..errors import ExportError
from ..model.export import CONFIG, SPEC, WEIGHTS, load_pretrained, read_safetensors
from ..spec import MaskSpec, load_spec
from .full import CHECKPOINT, TrainConfig, build_model, load_checkpoint, placement_for_model


def is_trained_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / WEIGHTS).is_file() or (path / CHECKPOINT).is_file())


def open_trained(folder: str | Path, kernel: str = "auto") -> tuple[torch.nn.Module, str]:
    folder = Path(folder)
    if (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file():
        return load_pretrained(folder, kernel=kernel), f"{folder / WEIGHTS}"
    if not (folder / CHECKPOINT).is_file():
        raise ExportError(f"{folder}: neither {WEIGHTS} + {CONFIG} nor {CHECKPOINT}: not a trained model folder")
    for name in ("config.yaml", SPEC):
        if not (folder / name).is_file():
            raise ExportError(f"{folder}: {CHECKPOINT} without its {name}")
    fields = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    known = {name: value for name, value in fields.items() if name in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{**known, "kernel": kernel, "drop_path": 0.0})
    state = load_checkpoint(folder / CHECKPOINT, flag=None)["model"]
    model = _model_for(config, load_spec(folder / SPEC), state)
    return model, f"{folder / CHECKPOINT} (epoch weights)"


def model_from_spec(spec: MaskSpec | str | Path, model: str, weights: str | Path | None = None, *,
                    image_size: int | None = None, depth: int | None = None, num_classes: int | None = None,
                    kernel: str = "auto") -> tuple[torch.nn.Module, str]:
    """timm's ``model`` with ``spec`` applied and ``weights`` loaded (class count and input
    channels read from them); without weights, its initial weights and ``num_classes``.
    ``depth`` defaults to the spec's layers for models whose name does not fix it (mait_*). A
    preset or compact ``spec`` takes the model's layers and heads, as ``train --spec`` does
    (``placement_for_model``)."""
    config = TrainConfig(model=model, image_size=image_size, depth=depth, kernel=kernel, drop_path=0.0)
    spec, config = placement_for_model(spec, config)
    if weights is None:
        return _model_for(config, spec, None, num_classes or 1000), "initial weights (no --weights given)"
    state = read_weights(weights)
    return _model_for(config, spec, state), str(weights)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"--weights {path}: no such file")
    if path.suffix == ".safetensors":
        return read_safetensors(path, f"--weights {path}")
    state = load_checkpoint(path, "--weights")
    return state["model"] if isinstance(state, dict) and isinstance(state.get("model"), dict) else state


def _model_for(config: TrainConfig, spec: MaskSpec, state: dict | None, num_classes: int = 1000):
    if state is not None:
        head, stem = state.get("head.weight"), state.get("patch_embed.proj.weight")
        if head is None or stem is None:
            raise ExportError("weights: no head.weight or patch_embed.proj.weight: not a timm ViT's state dict")
        num_classes, in_chans = head.shape[0], stem.shape[1]
    else:
        in_chans = 3
    model = build_model(config, spec, num_classes, in_chans)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise ExportError(f"weights do not fit {config.model}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    return model.eval()
