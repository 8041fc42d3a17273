"""bench/profile.py: py-spy's collapsed stacks summarised, and a real recording of a process."""

import subprocess
import sys
import time

import pytest

from bench.profile import SampledProfile, py_spy_path, summarize_collapsed


def test_collapsed_stacks_are_summarised_per_thread_and_function():
    lines = [
        "thread (101): embed-batcher;_run (batcher.py:97);forward (conv.py:10) 6",
        "thread (102): AnyIO worker thread;handle (router.py:5);parse (multipart.py:40) 3",
        "thread (103): AnyIO worker thread;handle (router.py:5);handle (router.py:5) 1",
        "not a sample line",
    ]
    summary = summarize_collapsed(lines)
    assert summary["samples"] == 10
    assert summary["threads"] == {"embed-batcher": 0.6, "AnyIO worker thread": 0.4}
    assert summary["self"] == {
        "forward (conv.py:10)": 0.6,
        "parse (multipart.py:40)": 0.3,
        "handle (router.py:5)": 0.1,
    }
    # a recursive frame counts once per sample
    assert summary["inclusive"]["handle (router.py:5)"] == pytest.approx(0.4)
    assert summarize_collapsed([]) == {"samples": 0, "threads": {}, "self": {}, "inclusive": {}}


BUSY = """
import threading, time
def spin():
    while True:
        sum(range(20000))
threading.Thread(target=spin, name="spinner", daemon=True).start()
time.sleep(60)
"""


@pytest.mark.skipif(py_spy_path() is None, reason="py-spy is not installed")
def test_a_real_recording_finds_the_thread_holding_the_gil(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.5)
        with SampledProfile(proc.pid, tmp_path / "busy") as profile:
            time.sleep(1.5)
    finally:
        proc.kill()
    assert profile.summary is not None and profile.summary["samples"] > 20
    assert max(profile.summary["threads"], key=profile.summary["threads"].get) == "spinner"
    assert any(name.startswith("spin ") for name in profile.summary["self"])
    assert (tmp_path / "busy.txt").is_file() and (tmp_path / "busy.json").is_file()
    # one thread spins: the GIL is held nearly all the time (py-spy may skip a few samples)
    assert 0.5 < profile.summary["gil_held_share"] <= 1.0
