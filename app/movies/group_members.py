"""In-memory genre-group memberships for `?genre_group=` answers.

Reading a group's ids from the database took 10.5 ms per answer at 100k movies (10,000 ids), more
than the search (docs/PERFORMANCE.md section 1). The ids are kept here, per group, as a sorted
array, tagged with the card cache's write generation: every committed write bumps it (see
CardCache), and a read that raced a write is never kept, by the same rule as the cards.

A write of one movie (POST, PATCH, DELETE) then reports where the movie now is (`moved`), and the
cached groups take that change and the new generation instead of being read again: under steady
ingest every filtered answer would otherwise pay the read. Any other write (bulk import, reindex)
reports nothing, and the groups it left behind are read again, which is always correct.
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
        self.reads = 0  # groups read from the database

    def ids(self, group: int, read: Callable[[], Iterable[int]]) -> np.ndarray:
        """The group's movie ids (sorted int64), from memory or, after any write, from `read`."""
        generation = self._generations.generation()  # before the read: see CardCache
        with self._lock:
            cached = self._groups.get(group)
        if cached is not None and cached[0] == generation:
            return cached[1]
        ids = np.unique(np.fromiter(read(), np.int64))
        with self._lock:
            self.reads += 1
            if self._generations.generation() == generation:  # no write since: keep it
                self._groups[group] = (generation, ids)
        return ids

    def moved(self, movie_id: int, groups: Iterable[int], generation: int) -> None:
        """A committed write left `movie_id` in exactly `groups` (none: deleted). Call it under
        the write lock, right after the `CardCache.invalidate` that returned `generation`:
        groups cached just before that write take the change and stay valid; older ones, and
        all of them if another write came between, are dropped."""
        now_in = set(groups)
        with self._lock:
            if self._generations.generation() != generation:
                self._groups.clear()
                return
            self._groups = {
                group: (generation, with_member(ids, movie_id, group in now_in))
                for group, (tag, ids) in self._groups.items()
                if tag == generation - 1
            }


def with_member(ids: np.ndarray, movie_id: int, member: bool) -> np.ndarray:
    """`ids` (sorted) with `movie_id` in or out; a new array, since readers may hold the old."""
    at = int(np.searchsorted(ids, movie_id))
    present = at < len(ids) and ids[at] == movie_id
    if member and not present:
        return np.insert(ids, at, movie_id)
    if present and not member:
        return np.delete(ids, at)
    return ids
