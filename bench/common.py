"""Shared bench helpers: structured vectors, a timed loop, percentiles, a results file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# MOVIEREC_BENCH_RESULTS: elsewhere, e.g. for the smoke tests, which must not overwrite real runs
RESULTS = Path(
    os.environ.get("MOVIEREC_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)


def clustered_unit_vectors(
    n: int, dim: int = 256, clusters: int = 200, rank: int = 48, seed: int = 0
) -> np.ndarray:
    """Structured vectors like real embeddings: cluster centres in a low-rank subspace + noise.
    (HNSW recall on i.i.d. random vectors says nothing about real catalogues.)"""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0]  # (dim, rank)
    centres = rng.normal(size=(clusters, rank)) @ basis.T
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        labels = rng.integers(0, clusters, m)
        chunk = centres[labels] + 0.35 * (rng.normal(size=(m, rank)) @ basis.T)
        chunk += 0.05 * rng.normal(size=(m, dim))
        x[start : start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return x


def timed(fn: Callable[[], object], repeat: int) -> np.ndarray:
    """Seconds per call."""
    out = np.empty(repeat)
    for i in range(repeat):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def pct(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q))


def sync(device) -> None:
    """Wait for the device's queued work, so a timer around a CUDA call times the work."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def relative_change(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Each row's |other - reference| / |reference|: median, p99 and max."""
    change = np.linalg.norm(other - reference, axis=1) / np.linalg.norm(reference, axis=1)
    return {"median": pct(change, 50), "p99": pct(change, 99), "max": float(change.max())}


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _stat_fields(stat_file: Path) -> list[str]:
    """/proc/.../stat after the command name (which may hold spaces): state is field 0."""
    return stat_file.read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    """User + system CPU time from stat fields."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessCounters:
    cpu_seconds: float  # user + system, all threads
    kernel_seconds: float  # system only: page faults land here
    minor_faults: int  # pages the kernel mapped (and zeroed) on first touch, e.g. memory the
    # allocator handed back and took again (app/allocator.py)


def process_counters(pid: int) -> ProcessCounters:
    """A process's CPU time and minor page faults so far, from one read of its stat (Linux)."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    system = int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return ProcessCounters(_cpu_seconds(fields), system, int(fields[7]))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time so far of each live thread of a process, by thread id (Linux)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _cpu_seconds(_stat_fields(task / "stat"))
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return out


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
