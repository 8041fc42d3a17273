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
