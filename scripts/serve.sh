#!/usr/bin/env bash
# Set up .venv, then run the service on its embedded default: SQLite + on-disk FAISS in ./data.
# Settings come from MOVIEREC_* variables or .env (see .env.example); extra args go to `movierec serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/movierec serve "$@"
