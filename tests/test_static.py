"""House style holds: ruff lint on everything, mypy on app/ and model/ (tool versions pinned in the
test extras, so a new release cannot fail CI without a code change)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint():
    done = run("ruff", "check", "app", "model", "tests", "bench")
    assert done.returncode == 0, done.stdout[-3000:]


def test_mypy():
    done = run("mypy", "app", "model")
    assert done.returncode == 0, done.stdout[-3000:]
