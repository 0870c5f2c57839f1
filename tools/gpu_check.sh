#!/usr/bin/env bash
# Every CUDA test and the GPU encode benchmark in one go, for a short loan of an H100/H200 (device tool).
# No GPU has been lent to any session yet: this script has not run on one.
#
# Here, before the loan (once; .whl/ is git-ignored, and what travels must stay under 64 MiB):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       compressai==1.2.8 pytorch-msssim==1.0.0 hypothesis
#   mkdir -p .whl/kodak && cp ../shared/data/kodak/kodim0{1,5,9}.png ../shared/data/kodak/kodim23.png .whl/kodak/
# The loan: run `bash tools/gpu_check.sh` with carry [".whl"], timeout_s 600. It writes to $OUT:
#   cuda_tests.log (pytest of every test_cuda*.py, the kernels built on the GPU machine) and
#   encoder_gpu.csv (lgi encode's pipeline on the GPU, default and fast effort at 0.5 bpp, 4 Kodak images).
set -euo pipefail
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
src=""
for p in packages/*/src; do src="$src:$PWD/$p"; done
export PYTHONPATH=/tmp/site$src PYTHONUNBUFFERED=1 LGI_EXTENSIONS_DIR=/tmp/lgi-ext
python3 -m pytest -q packages/*/tests/test_cuda*.py 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/bench_encoder.py run --device cuda --folder .whl/kodak --efforts default,fast --rates 0.5 \
    --out "$out/encoder_gpu.csv" 2>&1 | tee "$out/encoder_gpu.log"
