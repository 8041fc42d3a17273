"""Searches during an HNSW snapshot's clone, with a write waiting for it: how long the searches
stall, with the clone as a plain read (before session 8: the waiting writer held back every new
search until the clone ended) and as a long read (`RWLock.read(long=True)`, what `capture` does
now), alternating in the same run. Also how long the write waited, which the change does not
shorten (it cannot run before the clone ends).

    .venv/bin/python -m bench.snapshot_reads [--size 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from itertools import cycle
from pathlib import Path

import faiss
import numpy as np

from bench.common import clustered_unit_vectors, pct, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.search.index import VectorIndex  # noqa: E402

HNSW_M, HNSW_EF = 32, 128  # the service's defaults
WRITE_AFTER_S = 0.02  # the write arrives this long after the clone starts


def one_clone(index: VectorIndex, queries: np.ndarray, new: np.ndarray, long: bool) -> dict:
    """A reader thread searching back to back while the clone (capture's critical section, under
    the index's own lock) runs and a write arrives during it."""
    latencies: list[float] = []
    stop, cloning = threading.Event(), threading.Event()
    clone_s = write_wait_s = 0.0

    def reader() -> None:
        for q in cycle(queries):
            if stop.is_set():
                return
            t = time.perf_counter()
            index.search(q, 20)
            latencies.append(time.perf_counter() - t)

    def writer() -> None:
        nonlocal write_wait_s
        cloning.wait()
        time.sleep(WRITE_AFTER_S)
        t = time.perf_counter()
        index.upsert(np.array([10**9]), new[None])
        write_wait_s = time.perf_counter() - t

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the reader's steady state
    before = len(latencies)
    with index.lock.read(long=long):
        cloning.set()
        t = time.perf_counter()
        clone = faiss.clone_index(index._index)
        clone_s = time.perf_counter() - t
    threads[1].join()
    time.sleep(0.1)
    stop.set()
    threads[0].join()
    del clone
    during = np.array(latencies[before:])
    return {
        "long_read": long,
        "clone_s": clone_s,
        "write_wait_s": write_wait_s,
        "searches_during": len(during),
        "search_max_ms": 1e3 * float(during.max()),
        "search_p50_ms": 1e3 * pct(during, 50),
        "search_p50_steady_ms": 1e3 * pct(np.array(latencies[:before]), 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    vectors = clustered_unit_vectors(args.size + 1)
    index = VectorIndex(256, "hnsw", hnsw_m=HNSW_M, ef_search=HNSW_EF)
    t = time.perf_counter()
    index.upsert(np.arange(1, args.size + 1), vectors[:-1])
    build_s = time.perf_counter() - t
    queries = vectors[np.random.default_rng(3).integers(0, args.size, 200)]
    rounds = []
    for r in range(args.rounds):
        for long in (False, True):
            row = one_clone(index, queries, vectors[-1], long)
            rounds.append(row)
            print(r, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    stall = {
        name: float(np.median([x["search_max_ms"] for x in rounds if x["long_read"] == long]))
        for name, long in (("plain_read", False), ("long_read", True))
    }
    results = {
        "size": args.size,
        "build_s": build_s,
        "rounds": rounds,
        "median_search_max_ms": stall,
        "long_vs_plain_search_max": stall["long_read"] / stall["plain_read"],
    }
    print(results["median_search_max_ms"], round(results["long_vs_plain_search_max"], 3))
    print("wrote", save("snapshot-reads", results))


if __name__ == "__main__":
    main()
