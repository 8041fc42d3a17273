#!/usr/bin/env bash
# Set up .venv, then run the test suite (offline; PostgreSQL on 127.0.0.1:5432 for the postgres tests).
# Extra args go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
