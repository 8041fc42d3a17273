#!/usr/bin/env bash
# GPU figures for docs/PERFORMANCE.md: fusion net (fp32 and bf16) and ingest on CUDA.
# Run on a machine with a GPU (e.g. the device tool): bench/gpu.sh   -> bench/results/*cuda*.json
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup.sh
PY=.venv/bin/python
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
export HF_HUB_OFFLINE=1
$PY -m bench.fusion --device cuda --dtype fp32
$PY -m bench.fusion --device cuda --dtype bf16
$PY -m bench.ingest --device cuda
