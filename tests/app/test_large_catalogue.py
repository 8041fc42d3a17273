"""Start-up on a catalogue larger than the database's bound-parameter limit: every query that
takes a list of ids must chunk it (found by the 1M-movie benchmark: SQLite refused the start-up
centroid query)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

from app.db import make_engine
from app.lifespan import build_state
from app.migrations import upgrade_database
from app.movies.models import Movie, MovieGenreGroup, MovieVector
from tests.app.conftest import tiny_settings

MOVIES = 8_000
PARAM_LIMIT = 6_000  # above IN_CHUNK, below the catalogue


def limit_sqlite_parameters(dbapi_conn, _record) -> None:
    import sqlite3

    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, PARAM_LIMIT)


def test_start_up_with_more_movies_than_bound_parameters(tiny_models, tiny_embedder, tmp_path):
    url = f"sqlite:///{tmp_path / 'big.db'}"
    upgrade_database(url)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(MOVIES, 256)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engine = make_engine(url)
    ids = range(1, MOVIES + 1)
    with engine.begin() as conn:
        conn.execute(insert(Movie), [{"id": i, "title": f"m{i}", "plot": "p"} for i in ids])
        conn.execute(
            insert(MovieGenreGroup),
            [{"movie_id": i, "group_id": 1 + i % 10, "inferred": False} for i in ids],
        )
        conn.execute(
            insert(MovieVector),
            [
                {"movie_id": i, "model_version": tiny_embedder.model_version, "vector": v}
                for i, v in zip(ids, (x.tobytes() for x in vectors), strict=True)
            ],
        )
    engine.dispose()

    event.listen(Engine, "connect", limit_sqlite_parameters)
    try:
        settings = tiny_settings(tiny_models, tmp_path / "data", database_url=url)
        state = build_state(settings, tiny_embedder)
    finally:
        event.remove(Engine, "connect", limit_sqlite_parameters)
    try:
        assert len(state.index) == MOVIES
        expected = vectors[[i - 1 for i in ids if 1 + i % 10 == 3]].mean(0)
        # every labelled movie reached its group's centroid: |mean of its members' vectors|
        assert state.centroids.tightness(3) == pytest.approx(np.linalg.norm(expected), rel=1e-4)
    finally:
        state.batcher.close()
        state.engine.dispose()
