"""A spec in timm's own train.py: ``--device-modules maitsearch`` registers the mait_* models in
that process, and ``--model-kwargs mask_spec=best.yaml`` reaches ``timm.create_model`` as
train.py parses it (docs/GPU.md has the whole command)."""

import argparse
import subprocess
import sys

import timm
import torch
import yaml
from timm.utils import ParseKwargs

from maitsearch.spec import preset


def test_model_kwargs_parsed_as_timm_train_py_does_reach_the_model(tmp_path):
    path = preset("sch2", 4, 3).save(tmp_path / "best.yaml")
    parser = argparse.ArgumentParser()  # the argument as timm's train.py declares it
    parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs)
    args = parser.parse_args(["--model-kwargs", f"mask_spec={path}", "depth=4", "img_size=32"])
    assert args.model_kwargs == {"mask_spec": str(path), "depth": 4, "img_size": 32}
    model = timm.create_model("mait_tiny_patch16_224", num_classes=10, drop_path_rate=0.1, **args.model_kwargs)
    written = yaml.safe_load(path.read_text())["masks"]  # the file itself, not the library's reading of it
    assert [list(block.attn.hard_heads) for block in model.blocks] == written
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_device_modules_register_the_models_in_a_fresh_process():
    """timm's train.py imports each --device-modules name before it creates the model."""
    script = ("import importlib, timm\n"
              "before = timm.is_model('mait_tiny_patch16_224')\n"
              "for module in ['maitsearch', 'maitsearch.training.timm_compat']:\n"
              "    importlib.import_module(module)\n"
              "from timm.data import auto_augment\n"
              "from maitsearch.training import timm_compat\n"
              "patched = auto_augment.NAME_TO_OP['PosterizeIncreasing'] is timm_compat.posterize_keeping_zero_bits\n"
              "print(before, timm.is_model('mait_tiny_patch16_224'), patched == timm_compat.pillow_refuses_zero_bits())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "True", "True"], out.stderr[-2000:]
