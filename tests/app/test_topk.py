"""top_indices must pick exactly what a full sort picks: every size around the chunk boundaries,
counts past the number of chunks, ties, -inf (masked rows) and NaN."""

import numpy as np
import pytest

from app.search.topk import CHUNK, top_indices


def full_sort_top(scores: np.ndarray, count: int) -> np.ndarray:
    """The reference: a stable full sort, best first, ties in index order."""
    return np.argsort(-scores, kind="stable")[:count]


@pytest.mark.parametrize("n", [1, 5, CHUNK - 1, CHUNK, CHUNK + 1, 21 * CHUNK, 21 * CHUNK + 7, 5000])
@pytest.mark.parametrize("count", [1, 20, 21, 200])
def test_matches_a_full_sort(n, count):
    rng = np.random.default_rng(n * 1000 + count)
    for _ in range(20):
        scores = rng.normal(size=n).astype(np.float32)
        assert np.array_equal(top_indices(scores, count), full_sort_top(scores, count))


def test_clustered_scores_with_the_best_rows_in_few_chunks():
    """The best scores packed into adjacent rows (a catalogue imported genre by genre): the bound
    is looser, the answer the same."""
    rng = np.random.default_rng(1)
    scores = np.sort(rng.normal(size=10_000)).astype(np.float32)
    scores[:5000] = rng.permutation(scores[:5000])
    for count in (1, 21, 300):
        assert np.array_equal(top_indices(scores, count), full_sort_top(scores, count))


def test_ties_come_in_index_order():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, size=3000).astype(np.float32)  # hundreds of equal scores each
    top = top_indices(scores, 50)
    assert (scores[top] == 4).all()
    assert list(top) == sorted(top)  # equal scores: lowest index first
    assert len(top_indices(np.ones(1000, np.float32), 30)) == 30


def test_masked_rows_and_nan():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=4000).astype(np.float32)
    scores[rng.random(4000) < 0.996] = -np.inf  # a genre filter leaving a dozen rows
    finite = int(np.isfinite(scores).sum())
    assert finite < 21  # so one -inf row fills the answer: which one is unspecified
    top = top_indices(scores, 21)
    assert np.array_equal(top[:finite], full_sort_top(scores, finite))
    assert len(top) == 21 and scores[top[-1]] == -np.inf
    scores = rng.normal(size=4000).astype(np.float32)
    scores[7] = np.nan  # never produced by unit vectors; must not empty the answer
    assert len(top_indices(scores, 21)) == 21


def test_edge_counts():
    scores = np.arange(10, dtype=np.float32)
    assert list(top_indices(scores, 0)) == []
    assert list(top_indices(scores, 3)) == [9, 8, 7]
    assert list(top_indices(scores, 50)) == list(range(9, -1, -1))
    assert list(top_indices(np.empty(0, np.float32), 5)) == []
