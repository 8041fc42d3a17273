"""Background work yields the CPU to requests: the maintenance thread (index snapshots, HNSW
compaction, the explanations' calibration) runs at a higher nice value than the request and
encoder threads, so on a busy CPU the scheduler gives them the cores first.

With the encoders on the same two cores, the writes that coincided with a snapshot's copy, hash
and calibration read took up to 250-370 ms against 20-25 ms (docs/PERFORMANCE.md section 3)."""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("movierec")


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by `increment` (0: leave it). Linux only: there a
    thread's nice value is its own; elsewhere setpriority takes a process id, and a thread id
    could name another process."""
    if increment <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError as exc:  # a sandbox that forbids it: run at the process's priority
        log.warning(
            "could not lower the %s thread's priority: %s", threading.current_thread().name, exc
        )
