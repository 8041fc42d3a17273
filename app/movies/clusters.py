"""Genre-group centroids over the stored vectors: the thesis' explanation idea.

A centroid is kept as a running sum of the unit vectors of movies labelled with that group, so an
ingest or delete updates it in O(d). For unit vectors, |mean| equals the mean cosine of the members
to their (normalised) centroid: the cluster's tightness, for free.
"""

from __future__ import annotations

import threading

import numpy as np

from model.genres import GENRE_GROUPS

MIN_MEMBERS = 3  # a group with fewer labelled movies is not used to infer anything


class GenreCentroids:
    def __init__(self, dim: int) -> None:
        self._sums = np.zeros((len(GENRE_GROUPS) + 1, dim), dtype=np.float64)  # row 0 unused
        self._counts = np.zeros(len(GENRE_GROUPS) + 1, dtype=np.int64)
        self._lock = threading.Lock()

    def add(self, groups: list[int], vector: np.ndarray, sign: int = 1) -> None:
        if not groups:
            return
        with self._lock:
            for g in groups:
                self._sums[g] += sign * vector
                self._counts[g] += sign

    def remove(self, groups: list[int], vector: np.ndarray) -> None:
        self.add(groups, vector, sign=-1)

    def tightness(self, group: int) -> float | None:
        with self._lock:
            n = self._counts[group]
            return float(np.linalg.norm(self._sums[group]) / n) if n > 0 else None

    def nearest(
        self, vector: np.ndarray, top: int = 2, margin: float = 0.05
    ) -> list[tuple[int, float]]:
        """Groups for an unlabelled movie: the nearest centroid, plus the runner-up when it is
        within
        `margin` cosine; each with its cosine as confidence."""
        with self._lock:
            usable = np.flatnonzero(self._counts >= MIN_MEMBERS)
            if len(usable) == 0:
                return []
            cents = self._sums[usable]
        cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
        sims = cents @ vector.astype(np.float64)
        order = np.argsort(-sims)[:top]
        best = sims[order[0]]
        return [(int(usable[i]), float(sims[i])) for i in order if sims[i] >= best - margin]
