"""The similar path's in-memory cards: LRU bound, no stale card after a write, and the API never
shows a card older than the last acknowledged change (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from app.movies.card_cache import CachedCard, CardCache
from app.movies.repository import MovieCard
from app.movies.service import as_utc, movie_read
from tests.app.util import post_movie


def entry(
    movie_id: int, title: str = "t", text: np.ndarray | None = None, image: np.ndarray | None = None
) -> CachedCard:
    now = datetime.now(UTC)
    card = MovieCard(
        id=movie_id, external_id=None, title=title, plot="p", year=None, genres=[],
        created_at=now, updated_at=now, groups=[], model_version="m", image_count=1,
        text=np.ones(4, np.float32) if text is None else text,
        image=np.ones(4, np.float32) if image is None else image,
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
    """The cards' read runs as driver SQL and aggregates each movie's genre groups in the
    database (group_concat / string_agg): every field equals what the ORM reads (JSON and
    datetimes decoded from SQLite's text as SQLAlchemy would), with none, one or several groups,
    labelled and inferred, for every length of id list."""
    from sqlalchemy import select

    from app.movies.models import Movie
    from app.movies.repository import MovieRepository, from_bytes

    ids = [
        post_movie(client, title=t, plot=p, genres=g, seed=s, year=y).json()["id"]
        for t, p, g, s, y in [
            ("several", "a heist that goes wrong", ["Crime", "Comedy", "Horror"], 1, 1999),
            ("one", "a quiet family drama", ["Drama"], 2, None),
            ("none", "a movie with no group", ["Drama"], 3, 2001),
            ("inferred", "no genre given", [], 4, 2002),  # the catalogue's nearest centroid
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
            movie = movies[movie_id]
            expected = MovieCard.from_movie(movie)
            assert card.groups == sorted(expected.groups), movie_id
            for field in ("id", "external_id", "title", "plot", "year", "genres",
                          "model_version", "image_count"):  # fmt: skip
                assert getattr(card, field) == getattr(expected, field), (movie_id, field)
            for field in ("created_at", "updated_at"):  # SQLite keeps no zone: compare in UTC
                assert as_utc(getattr(card, field)) == as_utc(getattr(expected, field))
            text, image = card.features()
            assert movie.features is not None
            np.testing.assert_array_equal(text, from_bytes(movie.features.text))
            np.testing.assert_array_equal(image, from_bytes(movie.features.image))
        assert cards[ids[1]].year is None and cards[ids[0]].genres == ["Crime", "Comedy", "Horror"]
        assert len(cards[ids[0]].groups) >= 2 and len(cards[ids[1]].groups) == 1
        assert cards[ids[2]].groups == []
        inferred = cards[ids[3]].groups
        assert inferred and all(flag and 0 < conf <= 1 for _, flag, conf in inferred)
        assert any(conf != 1.0 for _, _, conf in inferred)  # a real float made the round trip
        for count in range(1, len(ids) + 1):  # the SQL is rendered once per list length
            assert sorted(repo.cards(ids[:count])) == sorted(ids[:count])
        session.rollback()


def test_cards_keep_unit_features_so_a_cosine_is_a_dot_product():
    cached = entry(1, text=np.array([3.0, 4.0], np.float32), image=np.zeros(3, np.float32))
    np.testing.assert_allclose(cached.text, [0.6, 0.8])
    np.testing.assert_array_equal(cached.image, np.zeros(3))  # no features: cosine 0, no NaN


def test_a_first_visit_reads_its_cards_without_the_request_session(client, catalog):
    """The cards' read gives its connection back in the handler's thread: the request's session
    ends with no transaction, so its teardown on the event loop needs no threadpool hop."""
    from app.movies import service

    state = client.app.state.movierec
    state.cards.clear()  # every card is a first visit
    with state.sessions() as session:
        query, results = service.similar_movies(
            state, session, catalog[0], k=5, exclude=set(), genre_group=None
        )
        assert query.read.id == catalog[0] and len(results) == 5
        assert not session.in_transaction()
    assert len(state.cards) == 6  # and the cards it read are cached


def test_a_confidence_read_as_text_parses_back_to_the_same_double(database_url):
    """SQLite's CAST to text keeps 15 digits: cards read through it showed a confidence one digit
    off the ORM's (and the movie's own page)."""
    from sqlalchemy import Float, create_engine, literal, select

    from app.movies.repository import real_as_text

    values = [0.8776106282743235, 0.1, 1.0, 1 / 3, 2.0**-30, 0.9999999999999999]
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            texts = [
                connection.scalar(select(real_as_text(literal(v, Float(precision=53)))))
                for v in values
            ]
    finally:
        engine.dispose()
    assert [float(t) for t in texts] == values
