"""Explanations place each similarity among random pairs of the catalogue (a percentile)."""

from __future__ import annotations

import numpy as np

from app.movies.explain import ModalityCalibration, explain


def test_percentile_is_the_share_of_sampled_pairs_strictly_below():
    rng = np.random.default_rng(0)
    text = np.round(rng.normal(0.3, 0.1, 500), 2)  # rounded: many ties
    image = rng.uniform(0.2, 0.9, 300)
    cal = ModalityCalibration(text, image)
    for x in [*np.round(rng.normal(0.3, 0.15, 200), 2), -1.0, 0.3, 2.0]:
        assert cal.text_percentile(float(x)) == np.mean(text < x)
    for x in rng.uniform(0.0, 1.0, 200):
        assert cal.image_percentile(float(x)) == np.mean(image < x)


def test_too_few_pairs_fall_back_to_the_raw_cosine():
    cal = ModalityCalibration(np.full(19, 0.1), np.full(19, 0.1))
    assert cal.text_percentile(0.5) is None
    why = explain(
        query_groups=[1], result_groups=[1, 2], text_sim=0.995, image_sim=0.5, calibration=cal
    )
    assert why["driver"] == "plot" and "plots very close (0.99)" in why["reason"]
    assert why["shared_groups"] and why["reason"].startswith("Both ")


def _catalogue_of_features(url: str, ids: list[int]):
    """Movies whose text feature holds their own id, so a sample says which rows it drew."""
    from sqlalchemy import insert

    from app.db import make_engine
    from app.migrations import upgrade_database
    from app.movies.models import Movie, MovieFeatures

    upgrade_database(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Movie), [{"id": i, "title": f"m{i}", "plot": "p"} for i in ids])
        conn.execute(
            insert(MovieFeatures),
            [
                {"movie_id": i, "text_model": "t", "image_model": "i", "image_count": 1,
                 "text": np.array([i, 1], "<f4").tobytes(), "image": np.ones(2, "<f4").tobytes()}
                for i in ids
            ],
        )  # fmt: skip
    return engine


def test_calibration_samples_the_whole_catalogue_not_its_first_rows(database_url):
    """Explanations are worded against random pairs of the catalogue: drawn from its first rows,
    a catalogue imported genre by genre would be calibrated on one genre."""
    from sqlalchemy.orm import Session

    from app.movies.repository import MovieRepository

    ids = [i for i in range(1, 3001) if i % 3 != 0]  # 2,000 movies, with gaps left by deletes
    engine = _catalogue_of_features(database_url, ids)
    try:
        with Session(engine) as session:
            repo = MovieRepository(session)
            drawn = [int(text[0]) for text, _ in repo.sample_features(200)]
            assert len(drawn) == len(set(drawn)) == 200 and set(drawn) <= set(ids)
            thirds = np.histogram(drawn, bins=[1, 1001, 2001, 3001])[0]
            assert thirds.min() >= 40, thirds  # about 67 from each third of the id range
            everything = [int(text[0]) for text, _ in repo.sample_features(5000)]
            assert sorted(everything) == ids  # asked for more than there are: all of them
    finally:
        engine.dispose()
