import math

import numpy as np
import pytest

from model.metrics import retrieval_metrics


def test_hand_computed_metrics():
    # query 1 ranks 2 (0.9), 3 (0.5), 4 (0.1); only 3 is relevant
    v = np.array(
        [[1, 0], [0.9, math.sqrt(1 - 0.81)], [0.5, math.sqrt(0.75)], [0.1, math.sqrt(0.99)]]
    )
    m = retrieval_metrics(v, [1, 2, 3, 4], {1: {3}})
    assert m["queries"] == 1
    assert m["thesis_recall@1"] == 0
    assert m["thesis_recall@10"] == 1
    assert m["mrr"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_thesis_recall_divides_by_min_k_relevant():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 4))
    v[1:4] = v[0] + 1e-3 * rng.normal(size=(3, 4))  # three near-duplicates of the query
    rel = {0: {1, 2, 3, 10, 11}}
    m = retrieval_metrics(
        v / np.linalg.norm(v, axis=1, keepdims=True), list(range(30)), rel, ks=(1, 3)
    )
    assert m["thesis_recall@3"] == pytest.approx(1.0)  # 3 hits / min(3, 5)
    assert m["recall@3"] == pytest.approx(3 / 5)


def test_no_relevant_queries_is_an_error():
    with pytest.raises(ValueError):
        retrieval_metrics(np.eye(3), [1, 2, 3], {1: {99}})
