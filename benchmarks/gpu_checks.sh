#!/usr/bin/env bash
# The device call: bash benchmarks/gpu_checks.sh [--quick]  (carry .gpudata and .whl)
# .gpudata holds a copy of ../shared/data; .whl the smp wheel (pure Python).
set -u
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 CATSEG_REQUIRE_SHARED_DATA=1
export CATSEG_SHARED_DATA="$PWD/.gpudata"
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc;
  python3 -c "import torch,sys;print(sys.version);print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; } 2>&1 | tee "$OUT/env.txt"
python3 benchmarks/gpu_checks.py --out "$OUT" "$@"
