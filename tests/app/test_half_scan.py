"""The flat index's half-precision first pass: exact answers, a sound error bound, and a
float32 scan whenever the candidates cannot prove the top k."""

import threading
import time

import numpy as np
import pytest

from app.search.half_scan import HalfScan
from app.search.index import VectorIndex
from bench.common import clustered_unit_vectors
from tests.app.util import CATALOG, post_movie

DIM = 32


def clustered(n, seed=0):
    """Structured vectors (clusters in a low-rank subspace), never i.i.d. noise."""
    return clustered_unit_vectors(n, dim=DIM, clusters=12, rank=8, seed=seed)


def float_index():
    return VectorIndex(DIM, half_scan=False)


def half_index():
    index = VectorIndex(DIM)
    index.half_scan_min_rows = 1  # the threshold is about speed; here every search takes it
    return index


def same_answer(got, want):
    """Same ids with the same scores, best first; ids of equal score at the cut may differ
    (which of them is chosen is unspecified, as in the float32 scan)."""
    assert len(got) == len(want)
    if not want:
        return
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-6)
    cut = want[-1][1]
    above = lambda hits: {i for i, s in hits if s > cut + 1e-6}  # noqa: E731
    assert above(got) == above(want)


def float_scan_forbidden(index, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the float32 scan ran")

    monkeypatch.setattr(index, "_search_flat_numpy", refuse)


def test_half_scan_answers_what_the_float_scan_answers_across_writes(monkeypatch):
    x = clustered(3000)
    ids = np.arange(1, 3001)
    half, ref = half_index(), float_index()
    for start in range(0, 3000, 700):  # several growths of the store: rows must survive them
        for index in (half, ref):
            index.upsert(ids[start : start + 700], x[start : start + 700])
    for index in (half, ref):
        index.remove(list(range(1, 600, 7)))  # holes filled with the last rows
        index.upsert(np.arange(2000, 2100), x[:100][::-1])  # replaced in place
        index.upsert(np.arange(5000, 5050), x[100:150])  # appended after the removals
    float_scan_forbidden(half, monkeypatch)
    rng = np.random.default_rng(1)
    for q_row in rng.integers(0, 3000, 60):
        exclude = {int(q_row) + 1, int(rng.integers(1, 3001))}
        same_answer(
            half.search(x[q_row], 20, exclude=exclude), ref.search(x[q_row], 20, exclude=exclude)
        )
    assert half.half_scan_fallbacks == 0


def test_near_ties_at_the_cut_fall_back_to_the_float_scan():
    """Eighty vectors whose scores differ by less than half precision can tell: the candidates
    cannot prove which of them make the top 20, so the float32 scan answers."""
    rng = np.random.default_rng(2)
    q = clustered(1)[0]
    others = clustered(2000, seed=3)
    others = others[others @ q < 0.5]  # the rest of the catalogue is far from the query
    near = q + 1e-5 * rng.normal(size=(80, DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    x = np.concatenate([near, others]).astype(np.float32)
    ids = np.arange(1, len(x) + 1)
    half, ref = half_index(), float_index()
    half.upsert(ids, x)
    ref.upsert(ids, x)
    same_answer(half.search(q, 20), ref.search(q, 20))
    assert half.half_scan_fallbacks == 1


def test_the_error_bound_holds_for_every_row():
    rng = np.random.default_rng(4)
    x = clustered(4000, seed=5)
    x[:50, :4] = 3e-5  # below half's normal range: subnormal rounding
    x[50:60] *= 0.1  # shorter vectors than unit
    scan = HalfScan(DIM)
    scan.reserve(len(x))
    scan.write(slice(0, len(x)), x)
    scan.set_count(len(x))
    for q in np.concatenate([x[rng.integers(0, 4000, 20)], -x[:2]]):
        rows, approx = scan.candidates(q, len(x))  # every row, in approximate order
        exact = x[rows].astype(np.float64) @ q.astype(np.float64)
        error = np.abs(approx - exact).max()
        bound = scan.error_bound(q)
        assert error <= bound < 1e-3, (error, bound)
        assert error > bound / 20  # the bound is not vacuous: a real rounding is within 20x


def test_vectors_too_long_for_half_precision_are_searched_in_float32(monkeypatch):
    x = clustered(500)
    half, ref = half_index(), float_index()
    for index in (half, ref):
        index.upsert(np.arange(1, 501), x)
        index.upsert(np.array([501]), 1e6 * x[:1])  # 1e6 overflows half precision
    assert not half._store.half.usable
    same_answer(half.search(x[0], 10), ref.search(x[0], 10))
    assert half.search(x[0], 1)[0][0] == 501


def test_a_loaded_snapshot_rebuilds_the_half_copy(tmp_path, monkeypatch):
    x = clustered(1500)
    ids = np.arange(1, 1501)
    saved = half_index()
    saved.upsert(ids, x)
    saved.save(tmp_path, last_seq=1, model_version="m")
    loaded = half_index()
    loaded.load(tmp_path, model_version="m")
    ref = float_index()
    ref.upsert(ids, x)
    float_scan_forbidden(loaded, monkeypatch)
    for q in x[:10]:
        same_answer(loaded.search(q, 20), ref.search(q, 20))


def test_small_catalogues_use_the_float_scan(monkeypatch):
    x = clustered(400)
    index = VectorIndex(DIM)  # the default threshold: 400 vectors are scanned in float32
    index.upsert(np.arange(1, 401), x)
    float_scan_forbidden(index, monkeypatch)
    with pytest.raises(AssertionError, match="float32 scan ran"):
        index.search(x[0], 5)
    index.half_scan_min_rows = 1
    assert len(index.search(x[0], 5)) == 5  # the half scan answered


def test_genre_filtered_searches_take_the_half_scan_too(monkeypatch):
    x = clustered(3000, seed=6)
    ids = np.arange(1, 3001)
    half, ref = half_index(), float_index()
    for index in (half, ref):
        index.upsert(ids, x)
        index.remove(list(range(3, 300, 4)))
    float_scan_forbidden(half, monkeypatch)
    group = ids[ids % 10 == 3]  # a tenth of the catalogue, some of it deleted
    rng = np.random.default_rng(7)
    for q_row in rng.integers(0, 3000, 30):
        q, exclude = x[q_row], {int(q_row) + 1, int(group[5])}
        for allowed in (group, group[:12], np.array([int(group[5]), 99_999]), group[:0]):
            want = ref.search(q, 20, exclude=exclude, allowed=allowed)
            got = half.search(q, 20, exclude=exclude, allowed=allowed)
            same_answer(got, want)
            assert {i for i, _ in got} <= set(allowed.tolist()) - exclude
    assert half.half_scan_fallbacks == 0


def test_the_error_bound_is_reached_by_the_worst_rounding():
    """Every component just past a rounding midpoint rounds up by almost half a unit in the last
    place (relative 2^-11), all in the query's direction: the error then comes within 2 % of the
    bound, so the bound is tight, and scaled with the vectors' length (here sqrt(32))."""
    x = np.full((3, DIM), 1 + 2.0**-11 + 2.0**-20, dtype=np.float32)
    scan = HalfScan(DIM)
    scan.reserve(3)
    scan.write(slice(0, 3), x)
    scan.set_count(3)
    q = np.full(DIM, DIM**-0.5, dtype=np.float32)
    _, approx = scan.candidates(q, 3)
    error = float(np.abs(approx - x.astype(np.float64) @ q.astype(np.float64)).max())
    assert 0.98 * scan.error_bound(q) <= error <= scan.error_bound(q)


def explained(results):
    keys = ("text_similarity", "image_similarity", "shared_groups")
    return [[r["explanation"][k] for k in keys] for r in results]


def test_the_service_answers_the_same_with_and_without_the_half_scan(make_client, tmp_path):
    """MOVIEREC_FLAT_HALF_SCAN reaches the index, and the similar-movies answers (order, scores,
    the explanations' cosines) do not depend on it."""
    answers = []
    for half in (True, False):
        client = make_client(
            f"sqlite:///{tmp_path / f'{half}.db'}", tmp_path / f"data-{half}", flat_half_scan=half
        )
        index = client.app.state.movierec.index
        assert index.half_scan is half
        index.half_scan_min_rows = 1  # the tiny catalogue takes the half scan when it is on
        ids = []
        for title, plot, genres, seed in CATALOG:
            r = post_movie(client, title=title, plot=plot, genres=genres, seed=seed)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        answers.append(
            [client.get(f"/movies/{i}/similar", params={"k": 5}).json()["results"] for i in ids]
        )
    half_answers, float_answers = answers
    for got, want in zip(half_answers, float_answers, strict=True):
        assert [r["movie"]["title"] for r in got] == [r["movie"]["title"] for r in want]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=2e-6)
        # the cosines and groups; the wording also depends on each service's calibration, a
        # random sample of its own catalogue
        assert explained(got) == explained(want)


def test_a_query_that_is_not_finite_is_left_to_the_float_scan():
    x = clustered(300)
    half, ref = half_index(), float_index()
    for index in (half, ref):
        index.upsert(np.arange(1, 301), x)
    q = x[0].copy()
    q[3] = np.nan
    assert half.search(q, 5) == ref.search(q, 5)
    assert half.half_scan_fallbacks == 0  # not counted: nothing was tried


def test_searches_during_writes_that_grow_and_shrink_the_store():
    """Readers take the half scan while a writer appends (the codes are reallocated as the store
    grows) and deletes: every answer is well formed and scored with its movie's vector."""
    x = clustered(9000, seed=8)  # movie i has vector x[i - 1], for good
    index = half_index()
    index.upsert(np.arange(1, 2001), x[:2000])
    starts = range(2000, 9000, 10)  # a write step each: 10 new movies, 2 deleted
    done, problems, searches = threading.Event(), [], [0, 0]
    ready = threading.Barrier(3)

    def write() -> None:
        rng = np.random.default_rng(9)
        ready.wait()
        try:
            for step, start in enumerate(starts):
                while min(searches) < step and not problems:  # each reader searched meanwhile
                    time.sleep(0.0001)
                index.upsert(np.arange(start + 1, start + 11), x[start : start + 10])
                index.remove([int(i) for i in rng.integers(1, start + 1, 2)])
        finally:
            done.set()

    def read(seed: int) -> None:
        rng = np.random.default_rng(seed)
        ready.wait()
        while not done.is_set():
            searches[seed % 2] += 1
            q = x[int(rng.integers(0, 9000))]
            try:
                hits = index.search(q, 20, exclude={1, 2})
            except Exception as exc:  # reported, and it stops the writer's wait
                problems.append(exc)
                return
            scores = [s for _, s in hits]
            if (
                len(hits) != 20
                or scores != sorted(scores, reverse=True)
                or any(i in (1, 2) for i, _ in hits)
                or any(abs(s - float(x[i - 1] @ q)) > 1e-5 for i, s in hits)
            ):
                problems.append(hits)

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(s,)) for s in (10, 11)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert done.is_set() and not problems
    assert min(searches) >= len(starts) - 1  # both readers searched between every two writes
    assert index.half_scan_fallbacks == 0
