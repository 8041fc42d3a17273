"""Retrieval metrics over a closed catalogue, the query itself excluded.

thesis_recall@k = hits in top k / min(k, relevant)   (the thesis' "relevant it could return")
recall@k        = hits in top k / relevant
ndcg@k, mrr     binary relevance
"""

from __future__ import annotations

import numpy as np

KS = (1, 10, 20)


def rank_catalogue(scores: np.ndarray) -> np.ndarray:
    """(Q, N) scores with self already masked to -inf -> (Q, N) column order, best first."""
    return np.argsort(-scores, axis=1, kind="stable")


def retrieval_metrics(
    vectors: np.ndarray | None,
    ids: list[int],
    relevant: dict[int, set[int]],
    ks: tuple[int, ...] = KS,
    *,
    scores: np.ndarray | None = None,
) -> dict[str, float]:
    """Average metrics over queries with at least one relevant movie in the catalogue.

    `vectors` (N, D) are compared by inner product (pass unit vectors for cosine); pass `scores`
    (N, N, higher is better) instead for methods that rank by something else.
    """
    index = {movie_id: i for i, movie_id in enumerate(ids)}
    queries = [q for q in ids if any(r in index and r != q for r in relevant.get(q, ()))]
    if not queries:
        raise ValueError("no query has a relevant movie inside this catalogue")
    if scores is None:
        if vectors is None:
            raise ValueError("pass vectors or scores")
        scores = vectors @ vectors.T
    scores = scores.astype(np.float64, copy=True)
    np.fill_diagonal(scores, -np.inf)
    q_rows = np.array([index[q] for q in queries])
    order = rank_catalogue(scores[q_rows])
    totals: dict[str, float] = {}
    max_k = max(ks)
    discounts = 1.0 / np.log2(np.arange(2, max_k + 2))
    rr = []
    for qi, q in enumerate(queries):
        rel_rows = {index[r] for r in relevant[q] if r in index and r != q}
        is_rel = np.fromiter((c in rel_rows for c in order[qi]), dtype=bool, count=order.shape[1])
        first = np.flatnonzero(is_rel)
        rr.append(1.0 / (first[0] + 1) if len(first) else 0.0)
        for k in ks:
            hits = int(is_rel[:k].sum())
            totals[f"thesis_recall@{k}"] = totals.get(f"thesis_recall@{k}", 0.0) + hits / min(
                k, len(rel_rows)
            )
            totals[f"recall@{k}"] = totals.get(f"recall@{k}", 0.0) + hits / len(rel_rows)
            top = is_rel[:k]  # shorter than k when the catalogue is small
            dcg = float((top * discounts[: len(top)]).sum())
            idcg = float(discounts[: min(k, len(rel_rows))].sum())
            totals[f"ndcg@{k}"] = totals.get(f"ndcg@{k}", 0.0) + dcg / idcg
    out = {name: value / len(queries) for name, value in totals.items()}
    out["mrr"] = float(np.mean(rr))
    out["queries"] = float(len(queries))
    return out
