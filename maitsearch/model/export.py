"""Deployment: weights with their config, ONNX (checked in onnxruntime), torch.export, int8.

- ``save_pretrained`` / ``load_pretrained``: ``model.safetensors`` and timm's ``config.json``
  (the ``save_for_hf`` layout, so ``timm.create_model("local-dir:DIR", pretrained=True)`` reads
  it), plus ``spec.yaml``. A ``mait_*`` config holds its spec inline; any other ViT or CaiT gets
  its masks back from ``spec.yaml`` in ``load_pretrained``.
- ``export_onnx`` + ``onnx_parity``: the dynamo exporter, batch size dynamic, then the same images
  through onnxruntime and PyTorch: max abs difference and top-1 agreement.
- ``quantize_int8``: onnxruntime's own dynamic quantization (int8 weights of MatMul and Gemm).
- ``export_program`` + ``program_parity``: a ``torch.export`` program (.pt2).

Exported or in eval mode, a masked layer runs its inference kernel (``kernels.band``): only the
window is computed where that is faster. onnx, onnxruntime and onnxscript are the optional
``export`` extra; a missing one is a one-line ``MissingExtraError`` naming the pip command.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ExportError, MissingExtraError
from ..spec import load_spec

INSTALL_EXTRA = 'pip install "maitsearch[export]"'
WEIGHTS, CONFIG, SPEC = "model.safetensors", "config.json", "spec.yaml"


def require(module: str, purpose: str):
    """Import an optional dependency, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                                f"{INSTALL_EXTRA}") from None


# ---- weights and config ------------------------------------------------------------------
def save_pretrained(model: torch.nn.Module, folder: str | Path, *, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (timm's ``save_for_hf``) + ``spec.yaml`` in ``folder``.
    ``mean``/``std``: the normalization the weights were trained with, so that timm's
    ``resolve_data_config`` on the reloaded model preprocesses as training did (default: the
    model's own ``pretrained_cfg``, ImageNet's for a fresh timm ViT)."""
    require("safetensors", "saving model.safetensors")
    from timm.models import save_for_hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = getattr(model, "mask_spec", None)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".saving-") as staging:  # each file lands whole
        data_config = {key: tuple(value) for key, value in (("mean", mean), ("std", std)) if value is not None}
        save_for_hf(model, staging, safe_serialization=True, data_config=data_config or None)
        if spec is not None:
            spec.save(Path(staging) / SPEC)
        for written in sorted(Path(staging).iterdir()):
            os.replace(written, folder / written.name)
    return folder / WEIGHTS


def read_safetensors(path: Path, named: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a torn or foreign file is one line naming ``named``."""
    safetensors = require("safetensors.torch", "reading .safetensors weights")
    with safetensors_named(named):
        return safetensors.load_file(str(path))


@contextlib.contextmanager
def safetensors_named(named: str):
    """A torn or foreign ``.safetensors`` file read inside (by us, or by timm) ends as one
    ``ExportError`` line naming ``named``, not safetensors' own error, which names no file."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as err:
        raise ExportError(f"{named}: not a readable safetensors file ({err})") from None


def load_pretrained(folder: str | Path, kernel: str = "auto") -> torch.nn.Module:
    """The model ``save_pretrained`` (or ``maitsearch train``) wrote to ``folder``, in eval mode."""
    import timm

    from .mait import MaiT, MasksNotSavedWarning, apply_mask_spec

    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise ExportError(f"{folder}: no {name} (save_pretrained and maitsearch train write it)")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ExportError(f"{folder / CONFIG}: not valid JSON ({err})") from None
    architecture = config.get("architecture", "") if isinstance(config, dict) else ""
    extra = {"kernel": kernel} if architecture.startswith("mait_") else {}
    with safetensors_named(str(folder / WEIGHTS)):  # timm reads the weights
        model = timm.create_model(f"local-dir:{folder.resolve()}", pretrained=True, **extra)
    if not isinstance(model, MaiT) and (folder / SPEC).is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MasksNotSavedWarning)  # the spec file is how they travel
            apply_mask_spec(model, load_spec(folder / SPEC), kernel=kernel)
    return model.eval()


def input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(C, H, W) the model was built for."""
    channels = model.patch_embed.proj.in_channels
    height, width = (int(s) for s in model.patch_embed.img_size)
    return channels, height, width


def example_images(model: torch.nn.Module, batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *input_shape(model), generator=generator)


# ---- ONNX --------------------------------------------------------------------------------
def export_onnx(model: torch.nn.Module, path: str | Path, *, opset: int | None = None) -> dict[str, Any]:
    """Write ``model`` (eval mode) to ``path`` with a dynamic batch size. Returns the file and
    its node count."""
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    path = Path(path)
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.no_grad(), _quiet():  # the exporter narrates its steps; the caller reports
            program = torch.onnx.export(model, (example_images(model, 2),), dynamo=True, opset_version=opset,
                                        input_names=["image"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), external_data=False, verbose=False)
        program.save(str(path))
    except Exception as err:  # noqa: BLE001 - the exporter's many error types, as one line
        raise ExportError(f"ONNX export of {type(model).__name__} failed: {_first_line(err)}") from err
    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    return {"path": str(path), "nodes": nodes, "bytes": path.stat().st_size}


def onnx_session(path: str | Path, threads: int | None = None, spin: bool = True):
    """An onnxruntime CPU session; ``threads`` caps its intra-op threads (None: onnxruntime's).
    ``spin=False`` stops its idle threads busy-waiting for the next run: several sessions timed
    in turn on few cores otherwise spin on the cores the running one needs."""
    ort = require("onnxruntime", "running an ONNX model")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: torch.nn.Module, path: str | Path, images: torch.Tensor) -> dict[str, Any]:
    """The same images through onnxruntime and through ``model`` in eval mode."""
    session = onnx_session(path)
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])
    return _compare(model, images, got)


def quantize_int8(source: str | Path, target: str | Path) -> dict[str, Any]:
    """onnxruntime's dynamic quantization: int8 weights, activations quantized on the fly."""
    require("onnxruntime", "int8 quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():  # it logs advice on pre-processing to the root logger
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return {"path": str(target), "bytes": Path(target).stat().st_size}


# ---- torch.export ------------------------------------------------------------------------
def export_program(model: torch.nn.Module, path: str | Path):
    """A ``torch.export`` program of ``model`` (eval mode, dynamic batch) saved to ``path`` (.pt2)."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.no_grad():
            program = torch.export.export(model, (example_images(model, 2),), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"torch.export of {type(model).__name__} failed: {_first_line(err)}") from err
    return program


def program_parity(model: torch.nn.Module, program, images: torch.Tensor) -> dict[str, Any]:
    with torch.no_grad():
        got = program.module()(images)
    return _compare(model, images, got)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _compare(model: torch.nn.Module, images: torch.Tensor, got: torch.Tensor) -> dict[str, Any]:
    with torch.no_grad():
        want = model.eval()(images)
    same = (got.argmax(-1) == want.argmax(-1)).sum().item()
    return {"max_abs": (got - want).abs().max().item(), "top1_agree": same, "images": len(images),
            "top1_identical": same == len(images)}
