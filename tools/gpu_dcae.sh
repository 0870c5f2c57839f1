#!/usr/bin/env bash
# The DCAE models on a lent H100/H200 for a few minutes: every shipped level continues from the package's
# float16 weights with AMP on (tools/train_dcae.py continue --from-shipped --device cuda), and comes back
# as a float16 checkpoint in $OUT. Kodak does not travel: the results are judged here, on the CPU, and a
# level is shipped only if its Kodak loss λ·255²·MSE + bpp went down.
#
# Here, before the loan (once; .whl/ is git-ignored, and what travels must stay under 64 MiB):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       compressai==1.2.8 pytorch-msssim==1.0.0
#   python tools/train_dcae.py corpus --scale 0.5 --out .whl/corpus        # 6 MB instead of 22
# The loan (device tool): run `bash tools/gpu_dcae.sh 6` with carry [".whl"], timeout_s 600.
# Back here, with the files it returned in FOLDER:
#   python tools/train_dcae.py import FOLDER && python tools/train_dcae.py ship --only-better
#   python benchmarks/bench_dictco.py rd          # the new curve, peers in the same run
set -euo pipefail
minutes=${1:-6}
out=${OUT:-/tmp/dcae-gpu}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/packages/lgi-dictco/src PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e packages/lgi-dictco >/dev/null 2>&1 || true
nvidia-smi --query-gpu=name,memory.total --format=csv
export LGI_DCAE_CORPUS=$PWD/.whl/corpus
python3 tools/train_dcae.py continue --from-shipped --device cuda --threads 8 --minutes "$minutes" 2>&1 \
    | tee "$out/continue.log"
python3 tools/train_dcae.py export "$out"
