"""HNSW compaction: how long writes wait while the graph is rebuilt without its tombstones.

A writer replaces one movie every `--write-every` seconds through a lock that stands for the
service's write lock, while 12 % of the graph is tombstoned and compacted. The baseline, in the
same run on the same index: the rebuild under that lock, as the service ran it before session 6
(inside the snapshot's capture). Then the rebuild as the service runs it now: no lock of the
service's held, writes recorded and re-applied to the new graph, only the last catch-up under
the index's write lock.

    .venv/bin/python -m bench.compaction [--sizes 100000 300000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import clustered_unit_vectors, pct, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOMBSTONED = 0.12  # just past the 10 % that triggers a compaction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--write-every", type=float, default=0.02, help="seconds between writes")
    args = parser.parse_args()
    results = {}
    for n in args.sizes:
        results[n] = measure(n, args.write_every)
        print(n, {k: round(v, 3) for k, v in results[n].items()}, flush=True)
    print("wrote", save("compaction", results))


def measure(n: int, write_every: float) -> dict:
    """Both rebuilds of one graph of `n` movies, each after tombstoning 12 % of it."""
    from app.search.index import VectorIndex

    x = clustered_unit_vectors(n + 10_000)
    index = VectorIndex(256, "hnsw")
    t = time.perf_counter()
    index.upsert(np.arange(n), x[:n])
    build_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    service_lock = threading.Lock()

    def under_the_lock() -> None:  # before session 6: inside the snapshot's capture
        with service_lock:
            index.compact()

    runs = {}
    for name, compact in (("under_lock", under_the_lock), ("online", index.compact)):
        gone = rng.choice(n, int(TOMBSTONED * n), replace=False)
        index.remove(gone.tolist())
        assert index.needs_compaction()
        runs[name] = with_writer(compact, index, service_lock, x, write_every)
        index.upsert(gone, x[gone])  # back to n live movies for the next run
    base, online = runs["under_lock"], runs["online"]
    return {
        "build_s": build_s,
        **{f"{run}_{key}": value for run, r in runs.items() for key, value in r.items()},
        "max_wait_vs_under_lock": base["max_write_ms"] / online["max_write_ms"],
    }


def with_writer(
    compact: Callable[[], object], index, service_lock: threading.Lock, x, every: float
) -> dict:
    """Run `compact` while a writer replaces a movie every `every` seconds through
    `service_lock`; the writes' latencies and the compaction's duration."""
    done = threading.Event()
    waits: list[float] = []

    def writer() -> None:
        rng = np.random.default_rng(1)
        live = sorted(index.ids())
        while not done.is_set():
            movie = int(rng.choice(live))
            t = time.perf_counter()
            with service_lock:
                index.upsert(np.array([movie]), x[-int(rng.integers(1, 10_000))][None])
            waits.append(time.perf_counter() - t)
            time.sleep(every)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)  # the writer is under way before the rebuild starts
    t = time.perf_counter()
    compact()
    seconds = time.perf_counter() - t
    time.sleep(0.5)
    done.set()
    thread.join()
    ms = 1e3 * np.array(waits)
    return {
        "compaction_s": seconds,
        "writes": len(waits),
        "p50_write_ms": pct(ms, 50),
        "p99_write_ms": pct(ms, 99),
        "max_write_ms": float(ms.max()),
    }


if __name__ == "__main__":
    main()
