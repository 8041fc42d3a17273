"""FlatStore: O(1) replace and delete must leave exactly the live rows, each with its vector."""

from __future__ import annotations

import numpy as np

from app.search.flat_store import FlatStore


def rows_of(store: FlatStore) -> dict[int, np.ndarray]:
    xb, ids = store.view()
    assert len(set(ids.tolist())) == len(ids) == len(store.rows)
    for row, movie_id in enumerate(ids.tolist()):
        assert store.rows[movie_id] == row
    return {int(i): xb[r] for r, i in enumerate(ids)}


def test_random_upserts_and_deletes_match_a_dict_model():
    rng = np.random.default_rng(0)
    store, model = FlatStore(4), {}
    for _ in range(300):
        if rng.random() < 0.6:
            ids = rng.integers(0, 80, rng.integers(1, 6))
            vectors = rng.normal(size=(len(ids), 4)).astype(np.float32)
            store.upsert(ids, vectors)
            for i, v in zip(ids.tolist(), vectors, strict=True):
                model[i] = v  # the last occurrence wins
        else:
            gone = rng.integers(0, 80, rng.integers(1, 4)).tolist()
            store.remove(gone)
            for i in gone:
                model.pop(i, None)
        got = rows_of(store)
        assert got.keys() == model.keys()
        for i, v in model.items():
            np.testing.assert_array_equal(got[i], v)
            np.testing.assert_array_equal(store.vector(i), v)
    assert store.vector(10_000) is None


def test_a_loaded_store_keeps_spare_rows_so_the_next_add_does_not_copy():
    xb = np.ones((2000, 8), np.float32)
    store = FlatStore.from_arrays(xb, np.arange(2000))
    before = store.view()[0].base
    store.upsert(np.array([5000]), np.zeros((1, 8), np.float32))
    assert store.view()[0].base is before  # same buffer: no reallocation
    assert store.n == 2001 and store.rows[5000] == 2000


def test_empty_and_full_flat_snapshots_load_back(tmp_path):
    from app.search.index import VectorIndex

    for n in (0, 50):
        index = VectorIndex(4)
        vectors = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
        index.upsert(np.arange(n), vectors)
        index.save(tmp_path / str(n), last_seq=1, model_version="m")
        loaded = VectorIndex(4)
        loaded.load(tmp_path / str(n), model_version="m")
        assert loaded.ids() == set(range(n))
        for i in range(n):
            np.testing.assert_array_equal(loaded.vector(i), vectors[i])
