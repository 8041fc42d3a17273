"""The best `count` of one query's scores, without a full argpartition of the catalogue.

`np.argpartition` over all N scores costs as much as a fifth of the exact search itself (1.0 ms
at 100k movies against a 5 ms GEMV, here). A cheaper bound does the same job: split the scores
into chunks of `CHUNK` and take each chunk's maximum; the count-th largest of those maxima, t,
has at least `count` scores >= t (one in each of those chunks), so every one of the best `count`
scores is >= t. Selecting among the few scores >= t gives the same top `count` in two linear,
vectorised passes over the scores (0.2 ms at 100k).
"""

from __future__ import annotations

import numpy as np

CHUNK = 64  # scores per chunk maximum: 1/64 of N maxima to partition, and few candidates


def top_indices(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest scores, best first; equal scores in index order.

    Which of several equal scores at the cut are chosen is unspecified, as with argpartition.
    """
    n = len(scores)
    count = min(count, n)
    if count <= 0:
        return np.empty(0, dtype=np.intp)
    head = n - n % CHUNK
    candidates = np.empty(0, dtype=np.intp)
    if head // CHUNK >= count:
        maxima = scores[:head].reshape(-1, CHUNK).max(axis=1)
        if head < n:
            maxima = np.append(maxima, scores[head:].max())
        bound = np.partition(maxima, len(maxima) - count)[len(maxima) - count]
        candidates = np.flatnonzero(scores >= bound)
    if len(candidates) < count:
        # too few chunks to bound `count` scores, or NaN scores (no bound): select among all
        candidates = np.arange(n)
    if len(candidates) > count:
        candidates = candidates[np.argpartition(-scores[candidates], count - 1)[:count]]
        candidates.sort()  # index order, so the stable sort below orders ties by index
    return candidates[np.argsort(-scores[candidates], kind="stable")]
