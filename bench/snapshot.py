"""Index snapshot: how long writes wait (the part under the lock: since session 5 only the rows
written during the bulk copy, after 200 such writes here; the baseline is the whole copy under
the lock, as before) against the rest of the snapshot (hash + write + fsync, on the maintenance
thread), and how long a load takes against the FAISS format flat snapshots had before session 5
(built, serialised, hashed and written; loaded by the same loader), all in the same run. Before
session 2 all of the write ran inside the write lock.

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
            raw, old = Path(tmp) / "raw", Path(tmp) / "faiss"
            t = time.perf_counter()  # the baseline: the whole copy under the lock
            index.capture(last_seq=1, model_version="m")
            full_copy_s = time.perf_counter() - t
            # the service's way: bulk copy with no lock, then the rows written meanwhile
            t = time.perf_counter()
            prepared = index.prepare_capture()
            assert prepared is not None
            prepared.bulk()
            bulk_s = time.perf_counter() - t
            rng = np.random.default_rng(0)
            for movie_id in rng.integers(1, n + 1, 200):  # writes that land during the bulk copy
                index.upsert(np.array([movie_id]), clustered_unit_vectors(1))
            t = time.perf_counter()
            captured = index.capture(last_seq=1, model_version="m", prepared=prepared)
            capture_s = time.perf_counter() - t
            t = time.perf_counter()
            captured.write(raw)
            write_s = time.perf_counter() - t
            del captured
            load_s = timed_load(VectorIndex, raw)
            old_write_s = write_faiss_format(index, old)
            old_load_s = timed_load(VectorIndex, old)
            size = (raw / "index.faiss").stat().st_size
        row = {
            "full_copy_under_lock_s": full_copy_s,
            "bulk_copy_no_lock_s": bulk_s,
            "capture_s": capture_s,
            "lock_vs_full_copy": full_copy_s / capture_s,
            "write_s": write_s,
            "lock_share": capture_s / (capture_s + write_s),
            "load_s": load_s,
            "faiss_format_write_s": old_write_s,
            "faiss_format_load_s": old_load_s,
            "write_vs_faiss_format": old_write_s / write_s,
            "load_vs_faiss_format": old_load_s / load_s,
            "bytes": size,
        }
        results[n] = row
        print(n, {k: round(v, 3) for k, v in row.items()}, flush=True)
    print("wrote", save("snapshot", results))


def timed_load(index_class, directory: Path) -> float:
    """Seconds to load a snapshot into a fresh index (read, checksum, build the store)."""
    fresh = index_class(256)
    t = time.perf_counter()
    fresh.load(directory, model_version="m")
    seconds = time.perf_counter() - t
    assert len(fresh) > 0
    return seconds


def write_faiss_format(index, directory: Path) -> float:
    """The baseline: the same vectors written as flat snapshots were before session 5 (added to
    a FAISS IndexIDMap2 and serialised, then hashed and written by the same `IndexSnapshot.write`
    with its fsyncs); the current loader still reads this format. Seconds after the copy (the
    part under the lock, the same in both formats) to the fsync of the manifest."""
    import faiss

    from app.search.index import FAISS_FORMAT, IndexSnapshot

    xb, ids = (a.copy() for a in index._store.view())

    def serialize() -> list[np.ndarray]:
        old = faiss.IndexIDMap2(faiss.IndexFlatIP(256))
        old.add_with_ids(xb, ids)
        return [faiss.serialize_index(old)]

    snapshot = IndexSnapshot(serialize, 1, len(index), "m", "flat", [], FAISS_FORMAT)
    t = time.perf_counter()
    snapshot.write(directory)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
