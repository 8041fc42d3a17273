"""A database whose stored raw features were made by other encoders than the configured ones:
start-up refuses to recompute vectors from them with a message that says what to do, and loses
nothing; rows of another size never break the explanations' calibration."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select

from app.db import make_engine
from app.lifespan import build_state
from app.migrations import upgrade_database
from app.movies.models import Movie, MovieFeatures, MovieVector
from app.movies.repository import StoredFeaturesMismatch
from tests.app.conftest import tiny_settings


def store_movies(url: str, rows: list[tuple[int, int, int, str]]) -> None:
    """(movie id, text size, image size, model version) -> movies with features and vectors."""
    upgrade_database(url)
    rng = np.random.default_rng(0)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Movie), [{"id": i, "title": f"m{i}", "plot": "p"} for i, *_ in rows])
        conn.execute(
            insert(MovieFeatures),
            [
                {"movie_id": i, "text_model": f"text-{t}", "image_model": f"image-{m}",
                 "image_count": 1, "text": rng.normal(size=t).astype("<f4").tobytes(),
                 "image": rng.random(m).astype("<f4").tobytes()}
                for i, t, m, _ in rows
            ],
        )  # fmt: skip
        unit = np.full(256, 1 / 16, "<f4").tobytes()
        conn.execute(
            insert(MovieVector),
            [{"movie_id": i, "model_version": v, "vector": unit} for i, _, _, v in rows],
        )
    engine.dispose()


def test_start_up_refuses_features_of_other_encoders_and_keeps_them(
    tiny_models, tiny_embedder, tmp_path
):
    text_dim, image_dim = tiny_embedder.text_encoder.dim, tiny_embedder.image_encoder.dim
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # made with the configured encoders' sizes, then with others, by another model version:
    # start-up must recompute every vector, and cannot for movie 3
    store_movies(url, [(1, text_dim, image_dim, "old"), (2, text_dim, image_dim, "old"),
                       (3, text_dim + 1, image_dim, "old")])  # fmt: skip
    settings = tiny_settings(tiny_models, tmp_path / "data", database_url=url)
    with pytest.raises(StoredFeaturesMismatch) as failed:
        build_state(settings, tiny_embedder)
    message = str(failed.value)
    assert "movie 3's stored features" in message and f"'text-{text_dim + 1}'" in message
    assert f"give {text_dim} + {image_dim}" in message and "MOVIEREC_TEXT_MODEL" in message
    engine = make_engine(url)
    with engine.connect() as conn:  # nothing was rewritten: every vector still the old model's
        versions = conn.scalars(select(MovieVector.model_version)).all()
    engine.dispose()
    assert versions == ["old", "old", "old"]


def test_calibration_skips_features_of_another_size(tiny_models, tiny_embedder, tmp_path):
    text_dim, image_dim = tiny_embedder.text_encoder.dim, tiny_embedder.image_encoder.dim
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    version = tiny_embedder.model_version  # current: no reindex at start-up
    rows = [(i, text_dim, image_dim, version) for i in range(1, 41)]
    rows += [(i, 2 * text_dim, image_dim, version) for i in range(41, 61)]
    store_movies(url, rows)
    settings = tiny_settings(tiny_models, tmp_path / "data", database_url=url)
    state = build_state(settings, tiny_embedder)
    try:
        assert len(state.calibration.text) == 2000  # pairs drawn among the 40 usable movies
    finally:
        state.batcher.close()
        state.engine.dispose()
