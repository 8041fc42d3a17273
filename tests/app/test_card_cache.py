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


def test_a_card_read_in_one_select_equals_the_orm_rows(client, catalog):
    """The cards' read aggregates each movie's genre groups in the database (group_concat /
    string_agg): the same groups, flags and confidences as the ORM reads, with none, one or
    several groups, labelled and inferred."""
    from sqlalchemy import select

    from app.movies.models import Movie
    from app.movies.repository import MovieRepository

    ids = [
        post_movie(client, title=t, plot=p, genres=g, seed=s).json()["id"]
        for t, p, g, s in [
            ("several", "a heist that goes wrong", ["Crime", "Comedy", "Horror"], 1),
            ("one", "a quiet family drama", ["Drama"], 2),
            ("none", "a movie with no group", ["Drama"], 3),
            ("inferred", "no genre given", [], 4),  # the catalogue's nearest centroid
        ]
    ]
    with client.app.state.movierec.sessions() as session:
        repo = MovieRepository(session)
        movies = {m.id: m for m in session.scalars(select(Movie).where(Movie.id.in_(ids)))}
        repo.set_groups(movies[ids[2]], [])
        session.flush()
        cards = repo.cards([*ids, 10**9])  # an unknown id is simply absent
        assert sorted(cards) == sorted(ids)
        for movie_id, card in cards.items():
            expected = MovieCard.from_movie(movies[movie_id])
            assert card.groups == sorted(expected.groups), movie_id
            assert (card.title, card.genres, card.model_version) == (
                expected.title, expected.genres, expected.model_version,
            )  # fmt: skip
        assert len(cards[ids[0]].groups) >= 2 and len(cards[ids[1]].groups) == 1
        assert cards[ids[2]].groups == []
        inferred = cards[ids[3]].groups
        assert inferred and all(flag and 0 < conf <= 1 for _, flag, conf in inferred)
        assert any(conf != 1.0 for _, _, conf in inferred)  # a real float made the round trip
        session.rollback()
