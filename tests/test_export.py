"""Deployment: specs that travel in timm's config.json, the weights folder train writes, ONNX
(checked in onnxruntime), int8, torch.export, and the export command. No network: local-dir only."""

import json
import subprocess
import sys
import warnings

import pytest
import timm
import torch
from timm.models import save_for_hf

import maitsearch  # noqa: F401  (registers the mait_* models)
from maitsearch.errors import ConfigError, MissingExtraError, SpecError
from maitsearch.model import MaskedAttention, apply_mask_spec
from maitsearch.model import export
from maitsearch.model.mait import MasksNotSavedWarning, resolve_spec
from maitsearch.spec import preset

SMALL = dict(depth=3, img_size=32, num_classes=7)  # a 2x2 patch grid: 5 tokens
SCH2 = preset("sch2", 3, 3)  # masks [[0, 1], [0], [0]]


def images(batch=4, size=32, seed=0):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("form", ["path", "MaskSpec", "dict", "preset", "compact"])
def test_save_for_hf_then_local_dir_rebuilds_the_same_masks(form, tmp_path):
    given = {"path": str(SCH2.save(tmp_path / "sch2.yaml")), "MaskSpec": SCH2, "dict": SCH2.to_dict(),
             "preset": "sch2", "compact": "311"}[form]
    torch.manual_seed(0)
    model = timm.create_model("mait_tiny_patch16_224", mask_spec=given, **SMALL)
    save_for_hf(model, tmp_path / "saved", safe_serialization=True)
    stored = json.loads((tmp_path / "saved" / "config.json").read_text())["model_args"]["mask_spec"]
    assert stored["masks"] == [[0, 1], [0], [0]], "the spec is inline, not a path or a name"
    rebuilt = timm.create_model(f"local-dir:{tmp_path / 'saved'}", pretrained=True)
    assert rebuilt.mask_spec.key() == model.mask_spec.key()
    assert [block.attn.hard_heads for block in rebuilt.blocks] == [(0, 1), (0,), (0,)]
    torch.testing.assert_close(outputs(rebuilt, images()), outputs(model, images()), atol=1e-6, rtol=0)


def test_a_spec_applied_after_construction_is_the_one_saved(tmp_path):
    model = timm.create_model("mait_tiny_patch16_224", mask_spec="none", **SMALL)
    apply_mask_spec(model, "all@3x5")
    save_for_hf(model, tmp_path, safe_serialization=True)
    rebuilt = timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    assert rebuilt.mask_spec.window == (3, 5) and rebuilt.mask_spec.num_masked == 9


def test_compact_text_is_never_taken_for_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "310").write_text("not: a spec\n")  # a file of that name does not shadow it
    assert resolve_spec("310", layers=3, heads=3).masks == ((0, 1), (0,), ())
    local = resolve_spec("737@3x5:local", layers=3, heads=3)
    assert (local.masks, local.window, local.semantics) == (((0, 1, 2), (0, 1), (0, 1, 2)), (3, 5), "local")
    with pytest.raises(SpecError, match="compact: layer 0 sets a head >= 3"):
        resolve_spec("8", layers=1, heads=3)


def test_a_mistyped_preset_is_not_reported_as_a_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^mask_spec sch9: no such file, nor a preset \(none, sch1, sch2, sch3, "
                                          r"all, random\) or compact text$"):
        timm.create_model("mait_tiny_patch16_224", mask_spec="sch9", **SMALL)
    with pytest.raises(SpecError, match=r"^gone.yaml: file: no such file$"):
        resolve_spec("gone.yaml")


def test_a_broken_inline_spec_is_one_line():
    with pytest.raises(SpecError, match=r"^mask_spec: masks\[1\]\[0\]: head 5 is out of range"):
        timm.create_model("mait_tiny_patch16_224", mask_spec={**SCH2.to_dict(), "masks": [[0], [5], []]}, **SMALL)


@pytest.mark.parametrize("name,hint", [("deit_tiny_patch16_224", "mait_tiny_patch16_224"),
                                       ("cait_xxs24_224", "apply_mask_spec after loading")])
def test_a_masked_deit_or_cait_warns_that_its_config_drops_the_masks(name, hint, tmp_path):
    model = timm.create_model(name, depth=2, img_size=32, num_classes=5)
    with pytest.warns(MasksNotSavedWarning, match=hint):
        apply_mask_spec(model, preset("sch1", 2, model.blocks[0].attn.num_heads))
    # the way that keeps them: save_pretrained writes spec.yaml beside, load_pretrained applies it
    export.save_pretrained(model, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MasksNotSavedWarning)
        rebuilt = export.load_pretrained(tmp_path)
    assert rebuilt.mask_spec.key() == model.mask_spec.key()
    x = images()
    torch.testing.assert_close(outputs(rebuilt, x), outputs(model, x), atol=1e-6, rtol=0)


def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = timm.create_model("mait_tiny_patch16_224", mask_spec="sch1", **SMALL)
    with pytest.raises(MissingExtraError, match=r'^ONNX export needs onnx, which is not installed: '
                                                r'pip install "maitsearch\[export\]"$'):
        export.export_onnx(model, tmp_path / "m.onnx")


# ---- ONNX and torch.export ------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["auto", "local"])
def test_onnx_export_of_sch2_matches_pytorch_in_onnxruntime(kernel, tmp_path):
    """At this size export runs the fused dense layer (auto) or, asked, the band kernel (local);
    parity as the issue sets it: max abs <= 1e-4 and the same top-1. int8 comes along with auto."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = timm.create_model("mait_tiny_patch16_224", mask_spec="sch2", depth=2, img_size=80, num_classes=10,
                              kernel=kernel)  # masks [[0, 1], [0]]; a 5x5 grid, tall enough for a 3-row band
    path = tmp_path / "model.onnx"
    written = export.export_onnx(model, path)
    x = images(8, 80)
    parity = export.onnx_parity(model, path, x)
    assert parity["max_abs"] <= 1e-4 and parity["top1_identical"], parity
    assert parity["max_abs"] > 0 or kernel == "auto", "onnxruntime computed it, not a copy of PyTorch's output"
    if kernel == "auto":
        quantized = export.quantize_int8(path, tmp_path / "model.int8.onnx")
        assert quantized["bytes"] < written["bytes"] / 2, "int8 weights: about a quarter of float32's"
        assert export.onnx_parity(model, quantized["path"], x)["max_abs"] < 1.0


def test_band_layer_exports_without_a_node_per_window_offset(tmp_path):
    """The band kernel's graph is the same size for a 3x3 and a 5x5 window (the training
    kernel's grows with every offset)."""
    pytest.importorskip("onnxscript")
    import onnx

    counts = {}
    for window in ((3, 3), (5, 5)):
        torch.manual_seed(0)
        layer = MaskedAttention(16, 2, alphas=[0.0, 1.0], grid_size=(6, 6), window=window, kernel="local").eval()
        path = tmp_path / f"layer-{window[0]}.onnx"
        with torch.no_grad(), export._quiet():
            torch.onnx.export(layer, (torch.randn(1, 37, 16),), dynamo=True).save(str(path))
        graph = onnx.load(str(path)).graph
        counts[window] = (len(graph.node), sum(node.op_type == "Slice" for node in graph.node))
    assert counts[(3, 3)] == counts[(5, 5)], counts


def test_torch_export_program_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("mait_tiny_patch16_224", mask_spec="sch2", kernel="local", depth=2, img_size=80,
                              num_classes=10)
    program = export.export_program(model, tmp_path / "model.pt2")
    parity = export.program_parity(model, program, images(3, 80))
    assert parity["max_abs"] <= 1e-5 and parity["top1_identical"], parity
    reloaded = torch.export.load(str(tmp_path / "model.pt2"))
    assert export.program_parity(model, reloaded, images(2, 80))["max_abs"] <= 1e-5


# ---- train's weights folder, and the export command ---------------------------------------------
def test_train_writes_weights_and_config_that_export_and_timm_open(tmp_path, caplog):
    from maitsearch.data import load_data
    from maitsearch.training.full import TrainConfig, load_checkpoint, train
    from maitsearch.training.trained import open_trained

    config = TrainConfig(model="mait_tiny_patch16_224", depth=2, image_size=32, epochs=1, batch_size=256,
                         device="cpu")
    train(preset("sch1", 2, 3), config, tmp_path)
    assert {"model.safetensors", "config.json", "spec.yaml"} <= {p.name for p in tmp_path.iterdir()}
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    rebuilt = timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    assert all(torch.equal(tensor, saved[name]) for name, tensor in rebuilt.state_dict().items())
    # timm preprocesses the reloaded model as training normalized the digits, not with ImageNet's
    # three-channel statistics averaged into one (which timm warned about on saving)
    pixels = load_data("digits", image_size=32).splits["train"][0].float() / 255  # stored as uint8
    resolved = timm.data.resolve_model_data_config(rebuilt)
    assert resolved["input_size"] == (1, 32, 32)
    assert resolved["mean"] == pytest.approx((pixels.mean().item(),), abs=1e-4)
    assert resolved["std"] == pytest.approx((pixels.std().item(),), abs=1e-3)
    assert "does not match" not in caplog.text
    opened, origin = open_trained(tmp_path)
    assert origin.endswith("model.safetensors")
    # an older train folder (checkpoint.pt, config.yaml, spec.yaml) opens to the same model
    for name in ("model.safetensors", "config.json"):
        (tmp_path / name).unlink()
    from_checkpoint, origin = open_trained(tmp_path)
    assert "checkpoint.pt" in origin
    x = export.example_images(opened, 2)  # digits: one channel
    torch.testing.assert_close(outputs(from_checkpoint, x), outputs(opened, x), atol=0, rtol=0)


@pytest.mark.slow
def test_export_command_prints_the_parity_check(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    spec = preset("sch2", 2, 3).save(tmp_path / "sch2.yaml")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "maitsearch", "export", *map(str, args)], capture_output=True,
                              text=True, timeout=300)

    done = cli("--spec", spec, "--img-size", 32, "--onnx", tmp_path / "m.onnx", "--save-dir", tmp_path / "w")
    assert done.returncode == 0, done.stderr
    assert "onnxruntime vs PyTorch on 8 random images: max abs difference" in done.stdout
    assert "top-1 agreement 8/8" in done.stdout
    assert (tmp_path / "w" / "model.safetensors").is_file() and (tmp_path / "m.onnx").is_file()
    by_name = cli("--spec", "sch2", "--model", "deit_tiny_patch16_224", "--img-size", 32, "--torch-export",
                  tmp_path / "d.pt2")  # a preset takes the model's 12 layers and 3 heads
    assert by_name.returncode == 0, by_name.stderr
    assert f"spec {preset('sch2', 12, 3).label()};" in by_name.stdout
    refused = cli(tmp_path / "sch2.yaml", "--onnx", tmp_path / "x.onnx")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "holds no trained model" in refused.stderr
