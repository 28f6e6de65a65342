#!/usr/bin/env bash
# What a GPU node owes the CUDA paths before anyone relies on them (docs/GPU.md): the CUDA tests,
# a search and a deit-recipe training on the GPU, and the GPU benchmarks, in at most nine minutes
# (each step has a time limit; they add up to 540 s). A failed or timed-out step does not stop
# the script, so one broken path hides no other; the summary at the end gives each step's status.
#
#     bash benchmarks/gpu_check.sh [OUT]      # OUT (default gpu-check/): log.txt and the benchmarks' JSON
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
summary=()

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    echo "=== $name: $*"
    timeout "$limit" "$@"
    local status=$?
    summary+=("$(printf '%-12s exit %3d  %4d s' "$name" "$status" $((SECONDS - started)))")
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, timm, optuna; print('torch', torch.__version__, 'timm', timm.__version__,
                'optuna', optuna.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    step tests 270 python3 -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_devices.py
    step search 75 python3 -m maitsearch run --config quick --device auto --results "$(mktemp -d)"
    step step-fp32 60 python3 benchmarks/step.py --device cuda --placements sch1,sch2,all --cases tiny@224
    step step-bf16 60 python3 benchmarks/step.py --device cuda --bf16 --placements sch1,sch2,all --cases tiny@224
    step train 75 python3 benchmarks/train.py --device cuda
    echo "=== summary"
    printf '%s\n' "${summary[@]}"
} 2>&1 | tee "$out/log.txt"
cp benchmarks/out/step-cuda*.json benchmarks/out/train-cuda*.json "$out"/ 2>/dev/null || true
