#!/usr/bin/env bash
# The CUDA checks, for a GPU machine (`make bench-gpu`): tests/test_cuda.py (trainer=gpu in 32-bit
# and bf16 mixed precision against the CPU, I3D features on CUDA against the CPU, pwes.spot
# --device cuda against the CPU), then training speed on the GPU at half and at paper width.
#
# It uses the machine's python3 and its torch. Where pwes's other dependencies are missing, put
# their wheels in .whl/ (ignored by git) first; this script installs them into /tmp/site. For a
# Python 3.12 machine that already has torch, lightning and torchmetrics, run this on a machine
# with access to the package index:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
# opencv-contrib (TV-L1 flow) is not needed: the tests run I3D on CUDA, and flow always runs on
# the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD/src"
else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, '| CUDA:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
status=$?
python3 benchmarks/bench_train.py --device cuda --sizes small casme2@128 casme2
python3 benchmarks/bench_train.py --device cuda --sizes casme2 --set network.stream_dim=1024 network.fused_dim=2048 network.attention_dim=512
exit $status
