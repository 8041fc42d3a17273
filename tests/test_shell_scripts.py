"""Every shell script parses (`bash -n`): the GPU ones run only where a device is lent, often
sessions after they were last edited, and a syntax error there would cost the lease."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("bench/*.sh"), *ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run"])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_script_parses(script: Path):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_gpu_scripts_are_there():
    assert {"bench/gpu.sh", "bench/gpu_stage.sh"} <= {str(p.relative_to(ROOT)) for p in SCRIPTS}
