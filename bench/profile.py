"""Where a server process spends its time, sampled by py-spy while a benchmark drives it.

The GPU ingest path reached 13 % of its batched ceiling with 8 clients (docs/PERFORMANCE.md,
section 7) and the suspect is the GIL: the encoder worker launching kernels from Python while
request threads parse bodies and talk to the database. `--gil` samples only the thread holding
the GIL, so the summary says who holds it and in which function.

    with SampledProfile(pid, out_dir / "ingest-8-clients") as profile:
        ...drive the server...
    profile.summary  # {"samples", "threads", "self", "inclusive", "seconds", "gil_held_share"}

gil_held_share (with `--gil`): samples over rate x seconds, about the share of the wall time in
which some thread held the GIL (approximate for runs of a second or two). Near 1.0 under load,
the GIL is the bottleneck.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType


def py_spy_path() -> str | None:
    """py-spy from $PY_SPY, else from PATH or next to this Python."""
    explicit = os.environ.get("PY_SPY")
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else None)


def summarize_collapsed(lines: list[str], top: int = 25) -> dict:
    """py-spy's raw (collapsed) output, `thread (TID): name;frame;...;leaf count` per line with
    --threads, -> sample counts per thread name (a thread pool's threads add up), per leaf
    function (self) and per function anywhere on the stack (inclusive, counted once per
    sample), each as a share of all samples."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        thread = thread.partition("): ")[2] or thread  # "thread (TID): name" -> name
        total += count
        threads[thread] += count
        if frames:
            self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {name: n / total for name, n in counter.most_common(top)} if total else {}

    return {
        "samples": total,
        "threads": shares(threads),
        "self": shares(self_time),
        "inclusive": shares(inclusive),
    }


class SampledProfile:
    """py-spy recording a process for the duration of a `with` block; a no-op (summary None)
    when py-spy is not installed. Writes STEM.txt (collapsed stacks) and STEM.json (summary)."""

    def __init__(self, pid: int, stem: Path, *, gil_only: bool = True, rate: int = 100) -> None:
        self.pid, self.stem, self.gil_only, self.rate = pid, stem, gil_only, rate
        self.summary: dict | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def __enter__(self) -> SampledProfile:
        exe = py_spy_path()
        if exe is None:
            return self
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format"]
        cmd += ["raw", "--threads", "--function", "--nonblocking"]
        cmd += ["--output", str(self.stem) + ".txt"]
        if self.gil_only:
            cmd.append("--gil")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        seconds = time.perf_counter() - self._started
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        _, err = self._proc.communicate(timeout=60)
        raw = Path(str(self.stem) + ".txt")
        if not raw.is_file():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        self.summary = summarize_collapsed(raw.read_text().splitlines())
        self.summary["seconds"] = seconds
        if self.gil_only:
            # py-spy's own window differs from this one by a fraction of a second: clamp at 1
            share = self.summary["samples"] / (self.rate * seconds)
            self.summary["gil_held_share"] = min(1.0, share)
        Path(str(self.stem) + ".json").write_text(json.dumps(self.summary, indent=2))
