"""In-memory genre-group memberships for `?genre_group=` answers.

Reading a group's ids from the database took 10.5 ms per answer at 100k movies (10,000 ids), more
than the search (docs/PERFORMANCE.md section 1). The ids are kept here, per group, as a sorted
array, and are valid while the card cache's generation is unchanged: every committed write bumps
it (see CardCache), and a read that raced a write is never kept, by the same rule as the cards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np

from app.movies.card_cache import CardCache


class GroupMembers:
    def __init__(self, generations: CardCache) -> None:
        self._generations = generations
        self._lock = threading.Lock()
        self._groups: dict[int, tuple[int, np.ndarray]] = {}  # group -> (generation, ids)

    def ids(self, group: int, read: Callable[[], Iterable[int]]) -> np.ndarray:
        """The group's movie ids (sorted int64), from memory or, after any write, from `read`."""
        generation = self._generations.generation()  # before the read: see CardCache
        with self._lock:
            cached = self._groups.get(group)
        if cached is not None and cached[0] == generation:
            return cached[1]
        ids = np.unique(np.fromiter(read(), np.int64))
        with self._lock:
            if self._generations.generation() == generation:  # no write since: keep it
                self._groups[group] = (generation, ids)
        return ids
