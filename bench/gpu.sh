#!/usr/bin/env bash
# GPU figures in one run: the CUDA-graph check, the fusion net (fp32, bf16), the Table 6 `paper`
# preset trained and evaluated (REPRODUCTION.md), the encoders' cost by batch size and the ingest
# path with the production encoder shapes (bf16 autocast), with CUDA graphs (MOVIEREC_CUDA_GRAPHS,
# experimental) and, as the same-run baseline, without. About 8 minutes on an H200 plus TRAIN_MINUTES.
#   bench/gpu.sh [DATASET] [FEATURES]
# DATASET: a dataset folder (plots, posters, similar lists); default ../shared/data/tmdb-similar.
# FEATURES: its feature cache from `movierec features`; without it the training step is skipped.
# Environment: PYTHON (default .venv/bin/python, else python3), TRAIN_MINUTES (3), INGEST_MOVIES (96),
# STEPS (default "test fusion train encoders ingest ingest-eager": which steps to run; "allocator",
# not in the default, adds bench.allocator: kept freed memory against glibc's defaults, 1 client;
# "similar", also not in the default, runs bench.similar at 100k on the machine's 16 CPU cores;
# "ingest-large", not in the default either, runs the eager ingest with posters enlarged 3x, the
# size of a backend's artwork, where b7's 600 px input takes the crop-only resample).
# Results: bench/results/*cuda*.json, runs/gpu-paper/ (training log, evaluation report) and, where
# py-spy is installed, bench/results/profiles/ (who holds the GIL during each ingest HTTP run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=${1:-../shared/data/tmdb-similar}
FEATS=${2:-}
STEPS=" ${STEPS:-test fusion train encoders ingest ingest-eager} "
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"
step() { echo "== $* ($(date +%T))"; }
want() { [[ "$STEPS" == *" $1 "* ]]; }
if want test; then
  step "CUDA graph replay equals the eager forward"
  $PY -m pytest -q -p no:cacheprovider tests/model/test_cuda_graphs.py
fi
if want fusion; then
  step fusion fp32
  $PY -m bench.fusion --device cuda --dtype fp32
  step fusion bf16
  $PY -m bench.fusion --device cuda --dtype bf16
fi
if want train && [ -n "$FEATS" ]; then
  RUN=runs/gpu-paper
  mkdir -p "$RUN"
  step "train the paper preset with the thesis settings (Adam 3e-4, batch 512, <=200 epochs)"
  $PY -m app.cli train "$DATA" --features "$FEATS" --out "$RUN/paper" --preset paper --head conv \
    --loss improved --max-minutes "${TRAIN_MINUTES:-3}" --device cuda > "$RUN/paper.train.json"
  cat "$RUN/paper.train.json"
  step evaluate
  $PY -m app.cli evaluate "$DATA" --features "$FEATS" --out "$RUN/results" \
    --checkpoint "proposed: Table 6 paper preset + improved loss (GPU)=$RUN/paper"
fi
if want encoders; then
  step "encoder cost by batch size, production shapes, CUDA graphs and eager"
  MOVIEREC_CUDA_GRAPHS=true $PY -m bench.encoders --device cuda --encoders production \
    --dataset "$DATA"
fi
if want ingest; then
  step "ingest, production encoder shapes, CUDA graphs"
  MOVIEREC_CUDA_GRAPHS=true $PY -m bench.ingest --device cuda --encoders production \
    --dataset "$DATA" --movies "${INGEST_MOVIES:-96}" --tag graphs --profile bench/results/profiles
fi
if want ingest-eager; then
  step "ingest, production encoder shapes, eager (MOVIEREC_CUDA_GRAPHS=false)"
  MOVIEREC_CUDA_GRAPHS=false $PY -m bench.ingest --device cuda --encoders production \
    --dataset "$DATA" --movies "${INGEST_MOVIES:-96}" --tag eager
fi
if want ingest-large; then
  step "ingest, production encoder shapes, eager, 1500x2250 posters (--poster-scale 3)"
  MOVIEREC_CUDA_GRAPHS=false $PY -m bench.ingest --device cuda --encoders production \
    --dataset "$DATA" --movies "${INGEST_MOVIES:-96}" --poster-scale 3 --tag eager-posters3
fi
if want allocator; then
  step "ingest, 1 client: kept freed memory against glibc's defaults (bench.allocator)"
  $PY -m bench.allocator --device cuda --encoders production --dataset "$DATA" \
    --movies "${INGEST_MOVIES:-96}"
fi
if want similar; then
  step "similar-movies path on this machine's CPU cores (faiss-gpu is not there), 100k movies"
  $PY -m bench.similar --sizes 100000 --requests 150
fi
step done
