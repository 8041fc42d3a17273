"""Exact-search storage: the vectors in one numpy array, with O(1) replace and delete.

FAISS' IndexIDMap2(IndexFlat) compacts its whole array and rebuilds its id map on every removal:
at 1M movies a replace or a delete held the index's write lock (and every reader) for 100-124 ms,
and the first add after a load reallocated 1 GB (docs/PERFORMANCE.md). Here a replace overwrites
its row, a delete moves the last row into the hole, and the array keeps spare rows. Not
thread-safe: VectorIndex guards it with its read/write lock.
"""

from __future__ import annotations

import numpy as np

HEADROOM = 1 / 8  # spare rows kept after a load or a growth, as a share of the rows in use


class FlatStore:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._xb = np.empty((0, dim), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self.n = 0
        self.rows: dict[int, int] = {}  # movie id -> row; also the live id set

    @classmethod
    def from_arrays(cls, xb: np.ndarray, ids: np.ndarray) -> FlatStore:
        """A store holding these rows (copied once, with spare capacity)."""
        store = cls(xb.shape[1])
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
            ids, vectors = ids[~old], vectors[~old]
        if not len(ids):
            return
        start, end = self.n, self.n + len(ids)
        self._reserve(end)
        self._xb[start:end], self._ids[start:end] = vectors, ids
        self.rows.update(zip(ids.tolist(), range(start, end), strict=True))
        self.n = end

    def remove(self, ids: list[int]) -> None:
        """Each removed row is filled with the last row in use."""
        for movie_id in ids:
            row = self.rows.pop(movie_id, None)
            if row is None:
                continue
            last = self.n - 1
            if row != last:
                self._xb[row] = self._xb[last]
                moved = int(self._ids[last])
                self._ids[row] = moved
                self.rows[moved] = row
            self.n = last

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._ids):
            return
        capacity = max(needed + int(needed * HEADROOM), 1024)
        xb = np.empty((capacity, self.dim), dtype=np.float32)
        ids = np.empty(capacity, dtype=np.int64)
        xb[: self.n], ids[: self.n] = self._xb[: self.n], self._ids[: self.n]
        self._xb, self._ids = xb, ids
