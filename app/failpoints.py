"""Deterministic crash points for durability tests.

MOVIEREC_FAILPOINT=<name> makes the process SIGKILL itself when it reaches that point, so every
crash window (after commit before index update, mid-snapshot, mid-replay ...) is hit on purpose.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "after_commit_before_index",  # write committed, index not yet updated
    "after_index_before_response",  # index updated, client not yet answered
    "snapshot_after_index_tmp",  # new index written to a temp file, nothing renamed
    "snapshot_after_index_rename",  # index renamed, manifest still the old one
    "replay_midway",  # start-up replay half done
)


def failpoint(name: str) -> None:
    if os.environ.get("MOVIEREC_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
