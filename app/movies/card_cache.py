"""In-memory LRU of the movie cards a similar-movies answer shows, so the hot path is served
from memory: a cached card skips the database read of its row and raw features and the building
of its response schema.

Consistency: writers invalidate after they commit, and every invalidation bumps a generation
counter. A reader notes the generation before it reads the database and stores what it read only
if no write happened in between, so a card read before a commit can never be cached after it.
The index is per process too (one writer process per database), so a per-process cache is as
fresh as the index it sits beside.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from app.movies.explain import unit
from app.movies.repository import MovieCard
from app.movies.schemas import MovieRead


@dataclass(frozen=True)
class CachedCard:
    read: MovieRead  # the response schema, built once
    text: np.ndarray  # raw encoder features scaled to unit length, for explanations' cosines
    image: np.ndarray

    @classmethod
    def from_card(cls, card: MovieCard, read: MovieRead) -> CachedCard:
        text, image = card.features()
        return cls(read, unit(text), unit(image))

    @property
    def group_ids(self) -> list[int]:
        return [g.id for g in self.read.genre_groups]


class CardCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # 0 disables the cache
        self._cards: OrderedDict[int, CachedCard] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._cards)

    def generation(self) -> int:
        """Note this before reading the database; pass it to `put_many`."""
        return self._generation

    def get_many(self, ids: Iterable[int]) -> tuple[dict[int, CachedCard], list[int]]:
        """(cached cards by id, ids to read from the database)."""
        found: dict[int, CachedCard] = {}
        missing: list[int] = []
        with self._lock:
            for i in ids:
                entry = self._cards.get(i)
                if entry is None:
                    missing.append(i)
                else:
                    self._cards.move_to_end(i)
                    found[i] = entry
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def put_many(self, entries: dict[int, CachedCard], generation: int) -> None:
        if not self.capacity:
            return
        with self._lock:
            if generation != self._generation:  # a write landed since the read: maybe stale
                return
            for i, entry in entries.items():
                self._cards[i] = entry
                self._cards.move_to_end(i)
            while len(self._cards) > self.capacity:
                self._cards.popitem(last=False)

    def invalidate(self, ids: Iterable[int]) -> int:
        """Call after committing a change to these movies; returns the new generation."""
        with self._lock:
            self._generation += 1
            for i in ids:
                self._cards.pop(i, None)
            return self._generation

    def clear(self) -> None:
        """After changes to many movies at once (bulk import, reindex)."""
        with self._lock:
            self._generation += 1
            self._cards.clear()
