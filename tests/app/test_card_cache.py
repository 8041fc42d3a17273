"""The similar path's in-memory cards: LRU bound, no stale card after a write, and the API never
shows a card older than the last acknowledged change (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from app.movies.card_cache import CachedCard, CardCache
from app.movies.repository import MovieCard
from app.movies.service import movie_read
from tests.app.util import post_movie


def entry(movie_id: int, title: str = "t") -> CachedCard:
    now = datetime.now(UTC)
    card = MovieCard(
        id=movie_id, external_id=None, title=title, plot="p", year=None, genres=[],
        created_at=now, updated_at=now, groups=[], model_version="m", image_count=1,
        text=np.ones(4, np.float32), image=np.ones(4, np.float32),
    )  # fmt: skip
    return CachedCard.from_card(card, movie_read(card))


def test_lru_keeps_the_most_recently_used():
    cache = CardCache(capacity=2)
    cache.put_many({1: entry(1), 2: entry(2)}, cache.generation())
    cache.get_many([1])  # 1 is now the most recent
    cache.put_many({3: entry(3)}, cache.generation())
    found, missing = cache.get_many([1, 2, 3])
    assert sorted(found) == [1, 3] and missing == [2]


def test_a_read_that_raced_a_write_is_not_cached():
    cache = CardCache(capacity=10)
    generation = cache.generation()  # a reader notes the generation, reads the old row...
    cache.invalidate([7])  # ...a writer commits and invalidates...
    cache.put_many({7: entry(7, "old title")}, generation)  # ...the reader's put is refused
    assert cache.get_many([7]) == ({}, [7])
    cache.put_many({7: entry(7, "new title")}, cache.generation())
    assert cache.get_many([7])[0][7].read.title == "new title"


def test_zero_capacity_disables():
    cache = CardCache(capacity=0)
    cache.put_many({1: entry(1)}, cache.generation())
    assert len(cache) == 0


def similar_titles(client, movie_id: int) -> dict[int, str]:
    r = client.get(f"/movies/{movie_id}/similar", params={"k": 5})
    assert r.status_code == 200, r.text
    return {x["movie"]["id"]: x["movie"]["title"] for x in r.json()["results"]}


def test_similar_answers_come_from_memory_and_follow_every_write(client, catalog):
    cache = client.app.state.movierec.cards
    first = similar_titles(client, catalog[0])
    hits = cache.hits
    assert similar_titles(client, catalog[0]) == first
    assert cache.hits >= hits + 6, "the second answer was not served from memory"

    target = next(iter(first))
    client.patch(f"/movies/{target}", json={"title": "Renamed"})
    assert similar_titles(client, catalog[0])[target] == "Renamed"

    # replacing by external id: a new title and new images under the same id
    ext = client.get(f"/movies/{target}").json()["external_id"]
    r = post_movie(client, title="Replaced", plot="a new plot", seed=77, external_id=ext)
    assert r.status_code == 200 and r.json()["id"] == target
    assert similar_titles(client, catalog[0]).get(target, "Replaced") == "Replaced"

    client.delete(f"/movies/{target}")
    assert target not in similar_titles(client, catalog[0])
