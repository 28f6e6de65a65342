"""The CUDA paths, on a GPU: every kernel against the dense reference in float32 and under bf16
autocast, torch.compile with inductor, search workers pinned to the GPU, and `train --recipe
deit` with bf16, under torchrun with NCCL where there are two GPUs. Skipped without CUDA (CI has
none); `benchmarks/gpu_check.sh` runs them on a GPU node beside the GPU benchmarks (docs/GPU.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from maitsearch.events import RunStarted

from .reference import neighbours_by_hand
from .test_attention import HEAD_MIXES, build, check_bf16_autocast, check_forward_backward, reference_for
from .test_devices import presets_search

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
KERNELS = ["dense", "local", "flex", "auto"]


def on_cuda(masked, x):
    return masked.cuda(), x.detach().cuda().requires_grad_()


@pytest.mark.parametrize("mix", HEAD_MIXES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_training_kernel_matches_the_reference_on_cuda(kernel, mix):
    modes = HEAD_MIXES[mix]
    masked, x = on_cuda(*build(modes, (6, 4), (3, 3), 1, kernel))
    allowed = neighbours_by_hand((6, 4), (3, 3), 1).cuda()
    if kernel == "auto":
        assert masked.kernels["cuda"] == "flex", "auto takes FlexAttention on CUDA"
    check_forward_backward(masked, modes, x, [allowed] * len(modes), atol=2e-5)


@pytest.mark.parametrize("mix", HEAD_MIXES)
def test_eval_mode_on_cuda_matches_the_reference(mix):
    modes = HEAD_MIXES[mix]
    masked, x = on_cuda(*build(modes, (6, 4), (3, 3), 1, "auto"))
    masked.eval()
    allowed = neighbours_by_hand((6, 4), (3, 3), 1).cuda()
    with torch.no_grad():
        torch.testing.assert_close(masked(x), reference_for(masked, modes, x, [allowed] * len(modes)),
                                   atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mix", ["hard+soft+plain", "all-soft", "local+soft", "all-paper"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_bf16_autocast_on_cuda_is_close_to_float32(kernel, mix):
    modes = HEAD_MIXES[mix]
    masked, x = on_cuda(*build(modes, (6, 4), (3, 3), 1, kernel))
    check_bf16_autocast(masked, modes, x, neighbours_by_hand((6, 4), (3, 3), 1).cuda())


@pytest.mark.parametrize("spec", ["sch2", "all"])
def test_inductor_compiles_a_training_step_whole_to_eagers_numbers(spec):
    """What `train --compile` does on CUDA: inductor's Triton kernels, no graph break."""
    torch.compiler.reset()
    torch.manual_seed(0)
    model = timm.create_model("mait_tiny_patch16_224", depth=2, img_size=32, patch_size=4, num_classes=10,
                              mask_spec=spec).cuda()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    model(x).square().mean().backward()
    eager_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.compile(model, fullgraph=True)(x).square().mean().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


def test_a_search_trains_on_the_gpu_and_keys_its_cache_by_the_gpu(quick_config, digits, tmp_path):
    from maitsearch.runs.cache import cache_key
    from maitsearch.search.launch import run_search

    config = quick_config.replace(proxy=quick_config.proxy.replace(epochs=1, device="auto"), jobs=1,
                                  cache=str(tmp_path / "cache"))
    events = []
    summary = run_search(config, results_root=tmp_path, name="gpu", data=digits, on_event=events.append)
    (started,) = [event for event in events if isinstance(event, RunStarted)]
    assert started.devices == ("cuda:0",)
    assert all(r.state == "complete" for r in summary.records)
    key = cache_key(summary.records[0].spec, config.proxy, threads=1)
    assert key["machine"] == f"cuda:{torch.cuda.get_device_name(0)}"


def test_two_workers_round_robin_on_one_gpu_train_in_their_own_processes(digits, tmp_path):
    """--jobs 2 on one GPU: two spawned workers, each pinned to cuda:0 before CUDA starts in it."""
    started, summary = presets_search("auto", tmp_path, digits, jobs=2, epochs=1)
    assert started.workers == 2 and started.devices == ("cuda:0", "cuda:0")
    assert [record.state for record in summary.records] == ["complete"] * 3


def checkout_env() -> dict:
    """This checkout first on the path of a subprocess, after it whatever the caller had."""
    repo = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}


DEIT_ON_CUDA = ["--spec", "sch2", "--recipe", "deit", "--model", "mait_tiny_patch16_224", "--depth", "2",
                "--img-size", "32", "--epochs", "2", "-b", "64", "--device", "cuda", "--amp"]


def test_train_with_the_deit_recipe_and_bf16_on_cuda(tmp_path):
    out = tmp_path / "deit"
    done = subprocess.run([sys.executable, "-m", "maitsearch", "train", *DEIT_ON_CUDA, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=checkout_env())
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in metrics)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (NCCL takes one GPU per process)")
def test_torchrun_on_two_gpus_trains_with_nccl_to_equal_weights_on_both_ranks(tmp_path):
    from maitsearch.training.checkpoints import load_checkpoint, weights_digest

    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "maitsearch", "train", *DEIT_ON_CUDA, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=checkout_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deit recipe in 2 processes (nccl, cuda:0)" in done.stdout
    final = load_checkpoint(out / "checkpoint.pt")
    assert final["world_size"] == 2 and final["rank_digests"] == [weights_digest(final["model"])] * 2
