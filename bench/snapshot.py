"""Index snapshot: how long a write waits (the copy under the write lock) against the rest of
the snapshot (serialise + hash + write + fsync, on the maintenance thread), one run. Before
session 2 all of it ran inside the write lock.

    .venv/bin/python -m bench.snapshot [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import clustered_unit_vectors, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    from app.search.index import VectorIndex

    results = {}
    for n in args.sizes:
        index = VectorIndex(256)
        index.upsert(np.arange(1, n + 1), clustered_unit_vectors(n))
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            captured = index.capture(last_seq=1, model_version="m")
            capture_s = time.perf_counter() - t
            t = time.perf_counter()
            captured.write(Path(tmp))
            write_s = time.perf_counter() - t
            size = (Path(tmp) / "index.faiss").stat().st_size
        row = {
            "capture_s": capture_s,
            "write_s": write_s,
            "lock_share": capture_s / (capture_s + write_s),
            "bytes": size,
        }
        results[n] = row
        print(n, {k: round(v, 3) for k, v in row.items()}, flush=True)
    print("wrote", save("snapshot", results))


if __name__ == "__main__":
    main()
