#!/usr/bin/env bash
# Every GPU check of the hot-path work, as one prepared run on a CUDA machine (~7 minutes):
#   1. the CUDA-only tests: no host sync per step (sync debug mode "error"), side-stream batch
#      copies, CUDA RNG restore, SIGKILL/resume bit-identical with dropout in fp32, fp16
#      (GradScaler) and bf16, and torchrun jobs (plain, and FSDP2 on a one-process NCCL group)
#      preempted with SIGUSR1 and SIGKILLed, resumed bit-identical;
#   2. bench/gpu_step.py: ms per step against careful hand loops and Lightning, and the async
#      checkpoint's blocking time with a multi-GB CUDA payload;
#   3. the default test suite with CUDA visible (device "auto" then means CUDA).
# Usage: OUT=/some/dir bash scripts/gpu_checks.sh   (logs land in $OUT)
# Without network access, carry missing wheels in ./.whl (pydantic and its dependencies).
set -u
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$PY" -c 'import torch, model_training_framework as m; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0)); print("mtf from", m.__file__)'
    "$PY" -c 'import lightning; print("lightning", lightning.__version__)'
} 2>&1 | tee "$OUT/env.txt"

echo "== CUDA tests" | tee "$OUT/tests.txt"
timeout 260 "$PY" -m pytest -q -p no:cacheprovider -m "" -rs \
    tests/trainer/test_device_hot_path.py tests/trainer/test_rng.py tests/test_bench_gpu_step.py \
    "tests/trainer/test_kill_resume.py::test_cuda_sigkill_resumes_bit_identically_with_dropout" \
    tests/ddp/test_cuda_nccl.py 2>&1 | tee -a "$OUT/tests.txt"

echo "== bench/gpu_step.py" | tee "$OUT/gpu_step.txt"
timeout 200 "$PY" bench/gpu_step.py 2>&1 | tee -a "$OUT/gpu_step.txt"

echo "== default suite, CUDA visible" | tee "$OUT/suite.txt"
timeout "${SUITE_TIMEOUT:-120}" "$PY" -m pytest -q -p no:cacheprovider -n 12 --timeout 90 -rf 2>&1 | tee -a "$OUT/suite.txt"
