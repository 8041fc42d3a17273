"""The maintenance thread (snapshots, compaction, calibration) runs at a lower priority than the
request threads, so background work yields the CPU (docs/PERFORMANCE.md section 3)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value: Linux")


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_maintenance_thread_runs_at_a_lower_priority(make_client):
    state = make_client().app.state.movierec
    here, step = nice_of_this_thread(), state.settings.maintenance_nice
    assert step > 0  # the default lowers it
    assert state.maintenance.submit(nice_of_this_thread).result() == min(19, here + step)
    assert nice_of_this_thread() == here  # the request side keeps its priority


def test_zero_leaves_it_at_the_process_priority(make_client):
    state = make_client(maintenance_nice=0).app.state.movierec
    assert state.maintenance.submit(nice_of_this_thread).result() == nice_of_this_thread()
