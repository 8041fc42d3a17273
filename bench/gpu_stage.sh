#!/usr/bin/env bash
# Stage, on the development machine, what a lent GPU machine lacks for `bench/gpu.sh`, so that a
# 15-minute device lease goes on measuring: the service's Python packages as wheels for that
# machine's Python 3.12 (its image holds torch, timm, transformers and httpx, not these) in .whl/,
# and the first posters of the dev set with its CSVs in .gpu/data (the whole set and the wheels
# together would pass the 64 MiB a device call carries). Both folders are git-ignored.
#   bench/gpu_stage.sh [DATASET]        MOVIES (default 120): movies whose posters travel
# Prints the device tool's command and carry list to run next.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/tmdb-similar}
PY=${PYTHON:-.venv/bin/python}
[ -d "$DATA/images" ] || { echo "no dataset at $DATA (plots.csv, movies.csv, images/)" >&2; exit 2; }
# the packages the GPU image lacks, at the versions this .venv runs (not pinned a second time here)
NAMES=(
  alembic Mako SQLAlchemy faiss-cpu fastapi starlette annotated-doc python-multipart pydantic
  pydantic_core pydantic-settings annotated-types typing-inspection typing_extensions
  python-dotenv opentelemetry-api uvicorn py-spy
)
mapfile -t WHEELS < <("$PY" - "${NAMES[@]}" <<'PY'
import sys
from importlib.metadata import version

for name in sys.argv[1:]:
    print(f"{name}=={version(name)}")
PY
)
[ "${#WHEELS[@]}" -eq "${#NAMES[@]}" ] || { echo "$PY lacks some of: ${NAMES[*]}" >&2; exit 2; }
rm -rf .whl .gpu
mkdir -p .whl .gpu/data/images
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d .whl "${WHEELS[@]}"
cp "$DATA"/*.csv .gpu/data/
# the posters of the first MOVIES movies that have one, in movies.csv order: what bench.ingest
# and bench.encoders take (bench.ingest.dev_batch)
"$PY" - "$DATA" "${MOVIES:-120}" <<'PY'
import csv, shutil, sys
from pathlib import Path

data, wanted = Path(sys.argv[1]), int(sys.argv[2])
copied = 0
with (data / "movies.csv").open(newline="") as f:
    for row in csv.DictReader(f):
        folder = data / "images" / row["id"]
        if copied == wanted:
            break
        if folder.is_dir() and any(folder.iterdir()):
            shutil.copytree(folder, Path(".gpu/data/images") / row["id"])
            copied += 1
print(f"{copied} movies' posters staged in .gpu/data")
PY
du -sh .whl .gpu | sed 's/^/staged: /'
cat <<'EOF2'
Next, through the device tool (one call, about 9 minutes; add `allocator` to STEPS if time allows):
  carry: [".whl", ".gpu"]
  command: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PYTHON=python3 PY_SPY=/tmp/site/bin/py-spy && STEPS="test encoders ingest ingest-eager" INGEST_MOVIES=48 bash bench/gpu.sh .gpu/data; mkdir -p $OUT/r && cp bench/results/*cuda*.json $OUT/r/
EOF2
