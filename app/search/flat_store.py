"""Exact-search storage: the vectors in one numpy array, with O(1) replace and delete.

FAISS' IndexIDMap2(IndexFlat) compacts its whole array and rebuilds its id map on every removal:
at 1M movies a replace or a delete held the index's write lock (and every reader) for 100-124 ms,
and the first add after a load reallocated 1 GB (docs/PERFORMANCE.md). Here a replace overwrites
its row, a delete moves the last row into the hole, and the array keeps spare rows. Not
thread-safe: VectorIndex guards it with its read/write lock.

A snapshot copies the store without holding that lock for the bulk of the copy (`FlatCopy`):
the store records every row written from `begin_copy` on, the rows are copied with no lock held,
and `finish` re-copies only the recorded rows under the lock. At 1M movies the full copy under
the lock held writes for 2.0-2.2 s on fresh memory (docs/PERFORMANCE.md).

With `half=True` the store mirrors every write into a HalfScan (the same rows in half
precision), which the exact search scans first.
"""

from __future__ import annotations

import numpy as np

from app.search.half_scan import HalfScan

HEADROOM = 1 / 8  # spare rows kept after a load or a growth, as a share of the rows in use


class FlatStore:
    def __init__(self, dim: int, *, half: bool = False) -> None:
        self.dim = dim
        self.half = HalfScan(dim) if half else None
        self._xb = np.empty((0, dim), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self.n = 0
        self.rows: dict[int, int] = {}  # movie id -> row; also the live id set
        self._written: set[int] | None = None  # rows written while a FlatCopy runs

    @classmethod
    def from_arrays(cls, xb: np.ndarray, ids: np.ndarray, *, half: bool = False) -> FlatStore:
        """A store holding these rows (copied once, with spare capacity)."""
        store = cls(xb.shape[1], half=half)
        store.upsert(ids, xb)
        return store

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, d) vectors and (N,) ids in use: views, valid until the next write."""
        return self._xb[: self.n], self._ids[: self.n]

    def vector(self, movie_id: int) -> np.ndarray | None:
        row = self.rows.get(movie_id)
        return None if row is None else self._xb[row].copy()

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Existing ids are overwritten in place, new ids appended; within one call the last
        occurrence of an id wins."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if len(np.unique(ids)) != len(ids):
            _, last = np.unique(ids[::-1], return_index=True)
            keep = np.sort(len(ids) - 1 - last)  # the last occurrence of each id, in input order
            ids, vectors = ids[keep], vectors[keep]
        rows = np.fromiter((self.rows.get(i, -1) for i in ids.tolist()), np.int64, len(ids))
        old = rows >= 0
        if old.any():  # copies only when some ids exist: a bulk load copies its vectors once
            self._xb[rows[old]] = vectors[old]
            if self.half is not None:
                self.half.write(rows[old], vectors[old])
            if self._written is not None:
                self._written.update(rows[old].tolist())
            ids, vectors = ids[~old], vectors[~old]
        if not len(ids):
            return
        start, end = self.n, self.n + len(ids)
        self._reserve(end)
        self._xb[start:end], self._ids[start:end] = vectors, ids
        if self._written is not None:
            self._written.update(range(start, end))
        self.rows.update(zip(ids.tolist(), range(start, end), strict=True))
        self._set_count(end)
        if self.half is not None:
            self.half.write(slice(start, end), vectors)

    def remove(self, ids: list[int]) -> None:
        """Each removed row is filled with the last row in use."""
        for movie_id in ids:
            row = self.rows.pop(movie_id, None)
            if row is None:
                continue
            last = self.n - 1
            if row != last:
                self._xb[row] = self._xb[last]
                if self.half is not None:
                    self.half.move(row, last)
                moved = int(self._ids[last])
                self._ids[row] = moved
                self.rows[moved] = row
                if self._written is not None:
                    self._written.add(row)
            self._set_count(last)

    def _set_count(self, n: int) -> None:
        self.n = n
        if self.half is not None:
            self.half.set_count(n)

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._ids):
            return
        capacity = max(needed + int(needed * HEADROOM), 1024)
        xb = np.empty((capacity, self.dim), dtype=np.float32)
        ids = np.empty(capacity, dtype=np.int64)
        xb[: self.n], ids[: self.n] = self._xb[: self.n], self._ids[: self.n]
        self._xb, self._ids = xb, ids
        if self.half is not None:
            self.half.reserve(capacity)

    def begin_copy(self) -> FlatCopy:
        """Start recording written rows; the caller holds the lock that excludes writers."""
        if self._written is not None:
            raise RuntimeError("a copy of this store is already running")
        self._written = set()
        return FlatCopy(self, self._xb, self._ids, self.n)

    def end_copy(self) -> set[int]:
        """Stop recording; the rows written since `begin_copy`."""
        written, self._written = self._written or set(), None
        return written


class FlatCopy:
    """A copy of a FlatStore taken mostly without its lock: `bulk` (no lock) copies the rows in
    use at `begin_copy` from the arrays of that moment, into fresh memory (where this VM pays for
    first touch); `finish` (under the lock) re-copies the rows written since and returns the
    store's (ids, vectors) as of that moment. `abort` stops the recording without a copy."""

    CHUNK_ROWS = 65_536  # per memcpy: other threads get the GIL between chunks

    def __init__(self, store: FlatStore, xb: np.ndarray, ids: np.ndarray, n: int) -> None:
        self.store, self._src_xb, self._src_ids, self._n = store, xb, ids, n
        self._xb = np.empty((0, store.dim), np.float32)
        self._ids = np.empty(0, np.int64)
        self._bulk_done = False

    def bulk(self) -> None:
        n = self._n
        self._xb = np.empty((n + int(n * HEADROOM), self.store.dim), np.float32)
        self._ids = np.empty(len(self._xb), np.int64)
        for start in range(0, n, self.CHUNK_ROWS):
            end = min(n, start + self.CHUNK_ROWS)
            self._xb[start:end] = self._src_xb[start:end]
            self._ids[start:end] = self._src_ids[start:end]
        self._src_xb = self._src_ids = np.empty(0)  # the old arrays may be freed now
        self._bulk_done = True

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the store now; the caller holds the lock that excludes writers."""
        store = self.store
        written = store.end_copy()
        n = store.n
        live_xb, live_ids = store.view()
        if not self._bulk_done or n > len(self._ids):
            # nothing copied yet, or the store outgrew the copy's headroom meanwhile (rare):
            # copy it all here rather than grow the copy
            return live_ids.copy(), live_xb.copy()
        rows = np.fromiter((r for r in written if r < n), np.int64)
        self._xb[rows], self._ids[rows] = live_xb[rows], live_ids[rows]
        return self._ids[:n], self._xb[:n]

    def abort(self) -> None:
        self.store.end_copy()
