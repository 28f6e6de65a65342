"""maitsearch export: a trial's spec out of a run, or a trained model out to ONNX, torch.export
and a weights folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, check_output_path, console, fail
from .results import open_run


@app.command("export")
def export_command(
        source: Optional[str] = typer.Argument(None, help="A run (name or folder), or a trained model's folder "
                                                          "(what train writes)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="A run: where to write the trial's spec."),
        trial: Optional[int] = typer.Option(None, help="A run: the trial (default: the run's best)."),
        results: Path = typer.Option(Path("results"), help="Where run folders live."),
        storage: Optional[str] = typer.Option(None, help="Read the run from its Optuna storage."),
        spec: Optional[str] = typer.Option(None, "--spec", help="No SOURCE: a spec YAML, preset (sch2) or compact "
                                                               "text to apply to --model."),
        model: str = typer.Option("mait_tiny_patch16_224", help="With --spec: a timm ViT or CaiT name."),
        weights: Optional[Path] = typer.Option(None, help="With --spec: .safetensors, or a .pt state dict or "
                                                          "train checkpoint (default: initial weights)."),
        img_size: Optional[int] = typer.Option(None, min=1, help="With --spec: the input size (default: the model's)."),
        depth: Optional[int] = typer.Option(None, min=1, help="With --spec: blocks, for models that take a depth "
                                                       "(default: the spec's layers)."),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="Write ONNX here, checked in onnxruntime."),
        int8: bool = typer.Option(False, "--int8", help="Also an int8 copy (onnxruntime's dynamic quantization) "
                                                         "beside --onnx, checked the same way."),
        torch_export: Optional[Path] = typer.Option(None, "--torch-export", help="Write a torch.export program (.pt2)."),
        save_dir: Optional[Path] = typer.Option(None, "--save-dir", help="Write model.safetensors + timm's "
                                                                          "config.json (+ spec.yaml) here."),
        batch: int = typer.Option(8, min=1, help="Images in the parity check's batch."),
        kernel: str = typer.Option("auto", help="Masked heads' kernel: auto (band where faster), dense or local."),
) -> None:
    """Copy a trial's mask spec out of a run (-o), or export a trained model.

    A trained model is a training folder, or --spec with --weights: --onnx with an onnxruntime
    parity check, --int8, --torch-export, --save-dir."""
    wants_model = any(target is not None for target in (onnx, torch_export, save_dir)) or int8
    if not wants_model:
        if source is None or output is None:
            fail("error: give a run and -o SPEC.yaml, or a model (a trained folder or --spec) and "
                 "--onnx/--torch-export/--save-dir")
        return _copy_spec(source, output, trial, results, storage)
    if int8 and onnx is None:
        fail("error: --int8 quantizes the --onnx file: give --onnx FILE")
    for flag, path in (("--onnx", onnx), ("--torch-export", torch_export), ("--output", output)):
        if path is not None:
            check_output_path(path, flag)
    if save_dir is not None:
        from ..atomic import check_writable

        check_writable(save_dir, "--save-dir")
    _export_model(source, spec, model, weights, img_size, depth, kernel, onnx, int8, torch_export, save_dir, batch)


def _copy_spec(source: str, output: Path, trial: Optional[int], results: Path, storage: Optional[str]) -> None:
    check_output_path(output)
    opened = open_run(source, results, storage)
    training = opened.training
    if training is not None:
        if trial is not None or training.spec is None:
            fail(f"error: {source} is a training (maitsearch train), not a search run: "
                 + ("it has no trials" if trial is not None else "its spec.yaml is missing or unreadable"))
        training.spec.save(output)
        console.print(f"wrote {output} ({training.spec.compact()}, the spec {source} trained with)", markup=False)
        return
    if opened.transfer is not None:
        fail(f"error: {opened.name} is a transfer study, whose trials are in its runs: export "
             f"{opened.path / 'proxy'} or {opened.path / 'target'}")
    if trial is None:
        if opened.best is None:
            fail(f"error: run {opened.name} has no best.yaml; pass --trial N")
        found = opened.best
    else:
        try:
            record = opened.record(trial)
        except KeyError as err:
            fail(f"error: {err.args[0]}")
        found = record.to_spec(opened.name, opened.strategy, opened.dataset)
    found.save(output)
    console.print(f"wrote {output} ({found.compact()})", markup=False)


def _export_model(source, spec, model_name, weights, img_size, depth, kernel, onnx, int8, torch_export, save_dir,
                  batch) -> None:
    from ..model import export
    from ..training.trained import is_trained_folder, model_from_spec, open_trained

    if source is not None:
        if spec is not None:
            fail("error: give a trained folder or --spec, not both")
        if not is_trained_folder(source):
            fail(f"error: {source} holds no trained model (model.safetensors or checkpoint.pt); a search run's "
                 "trials are proxies: train its spec with `maitsearch train --spec`, or pass --spec and --weights")
        model, origin = open_trained(source, kernel=kernel)
    elif spec is not None:
        model, origin = model_from_spec(spec, model_name, weights, image_size=img_size, depth=depth, kernel=kernel)
    else:
        fail("error: give a trained model's folder, or --spec (with --weights)")
    masked = getattr(model, "mask_spec", None)
    console.print(f"{type(model).__name__} {'x'.join(map(str, export.input_shape(model)))}"
                  f"{f', spec {masked.label()}' if masked is not None else ''}; weights: {origin}", markup=False)
    images = export.example_images(model, batch)
    if save_dir is not None:
        export.save_pretrained(model, save_dir)
        console.print(f"wrote {save_dir}: model.safetensors, config.json, spec.yaml", markup=False)
    if onnx is not None:
        written = export.export_onnx(model, onnx)
        console.print(f"wrote {onnx} ({written['nodes']} nodes, {written['bytes'] / 2 ** 20:.1f} MiB)", markup=False)
        console.print(_parity_line("onnxruntime", export.onnx_parity(model, onnx, images)), markup=False)
        if int8:
            quantized = onnx.with_name(f"{onnx.stem}.int8{onnx.suffix}")
            written = export.quantize_int8(onnx, quantized)
            console.print(f"wrote {quantized} (int8 weights, {written['bytes'] / 2 ** 20:.1f} MiB)", markup=False)
            console.print(_parity_line("onnxruntime int8", export.onnx_parity(model, quantized, images)),
                          markup=False)
    if torch_export is not None:
        program = export.export_program(model, torch_export)
        console.print(f"wrote {torch_export}", markup=False)
        console.print(_parity_line("torch.export", export.program_parity(model, program, images)), markup=False)


def _parity_line(what: str, parity: dict) -> str:
    return (f"  {what} vs PyTorch on {parity['images']} random images: max abs difference "
            f"{parity['max_abs']:.2e}, top-1 agreement {parity['top1_agree']}/{parity['images']}")
