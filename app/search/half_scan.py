"""A half-precision copy of the flat store's vectors: a cheap first pass of the exact search.

The exact scan of one query is a float32 GEMV that streams every stored vector through memory
(100 MB at 100k movies). FAISS' fp16 scalar quantizer streams half of that and decodes it with
SIMD on one core: at 100k movies it finds candidates in 2.3 ms where numpy's GEMV takes 4.2 ms
on both cores of the development machine (docs/PERFORMANCE.md section 1). The candidates are then
rescored in float32, and the answer is still exact: rounding a vector to half precision moves its
score by at most `error_bound`, so when the k-th exact score among the candidates clears the last
candidate's approximate score by that bound, no vector left out can belong to the top k. When it
does not (near-ties at the cut), the caller scans in float32 as before.

Row r here is row r of the FlatStore, which mirrors every write into it. The rows live in the
codes of a FAISS IndexScalarQuantizer (QT_fp16 is plain IEEE half), written through a numpy view,
so FAISS searches them in place.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

HALF_UNIT_ROUNDOFF = 2.0**-11  # IEEE half: 10 stored mantissa bits
FLOAT_UNIT_ROUNDOFF = 2.0**-24
HALF_SUBNORMAL_ERROR = 2.0**-25  # absolute rounding error of a value below half's normal range
HALF_SAFE_NORM = 1e4  # far below half's largest value (65,504); the service stores unit vectors


class HalfScan:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        self._rows = np.empty((0, dim), dtype=np.float16)  # a view of the index's codes
        self._max_norm = 0.0  # of any vector ever written: the error bound may only grow

    @property
    def usable(self) -> bool:
        """False once a vector too long (or not finite) for half precision was written."""
        return self._max_norm <= HALF_SAFE_NORM

    def reserve(self, capacity: int) -> None:
        """Room for `capacity` rows; the rows written so far are kept."""
        codes = self._index.codes
        codes.resize(capacity * self._index.code_size)  # copies the bytes in use
        view = faiss.rev_swig_ptr(codes.data(), capacity * self._index.code_size)
        self._rows = view.view(np.float16).reshape(capacity, self.dim)

    def write(self, rows: np.ndarray | slice, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        norm = float(np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64).max()))
        self._max_norm = max(self._max_norm, norm if math.isfinite(norm) else math.inf)
        with np.errstate(over="ignore"):  # a vector too long for half makes it unusable
            self._rows[rows] = vectors

    def move(self, dst: int, src: int) -> None:
        self._rows[dst] = self._rows[src]

    def set_count(self, n: int) -> None:
        """Rows 0..n-1 are in use (the store's n; set under its write lock)."""
        self._index.ntotal = n

    def candidates(
        self, query: np.ndarray, count: int, inside: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, approximate scores) of the `count` best rows by half-precision score, best
        first; with `inside` (a mask over the rows in use), only among those rows. `count` must
        not exceed the rows that can be chosen."""
        params = None
        if inside is not None:
            bitmap = np.packbits(inside, bitorder="little")  # alive until the search returns
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBitmap(len(inside), faiss.swig_ptr(bitmap))
        scores, rows = self._index.search(query[None], count, params=params)
        return rows[0], scores[0]

    def error_bound(self, query: np.ndarray) -> float:
        """A bound on |approximate - float32 score| for any stored row: half rounding (relative
        2^-11 per component, so at most 2^-11 |q| |x| in all, plus the subnormal floor) and
        the float32 sums of both scores, with |x| the longest vector written."""
        q_norm = float(np.linalg.norm(query.astype(np.float64)))
        rounding = HALF_UNIT_ROUNDOFF * q_norm * self._max_norm
        subnormal = HALF_SUBNORMAL_ERROR * math.sqrt(self.dim) * q_norm
        sums = 2 * (self.dim + 1) * FLOAT_UNIT_ROUNDOFF * q_norm * self._max_norm * 1.01
        return rounding + subnormal + sums
