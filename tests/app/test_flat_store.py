"""FlatStore: O(1) replace and delete must leave exactly the live rows, each with its vector."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_a_copy_taken_mostly_without_the_lock_equals_the_store_at_finish():
    """begin_copy, writes, bulk, more writes (growth past the headroom, deletes that move rows),
    finish: the copy must be exactly the store's rows at finish, whatever ran in between."""
    rng = np.random.default_rng(1)

    def random_writes(store: FlatStore, count: int) -> None:
        for _ in range(count):
            if rng.random() < 0.6:
                ids = rng.integers(0, 3000, rng.integers(1, 40))
                store.upsert(ids, rng.normal(size=(len(ids), 4)).astype(np.float32))
            else:
                store.remove(rng.integers(0, 3000, rng.integers(1, 30)).tolist())

    paths = set()  # which way each finish went: re-copying the written rows, or copying it all
    for trial in range(20):
        store = FlatStore(4)
        store.upsert(np.arange(1000), rng.normal(size=(1000, 4)).astype(np.float32))
        copy = store.begin_copy()
        random_writes(store, int(rng.integers(0, 20)))
        copy.bulk()
        random_writes(store, int(rng.integers(0, 60)))  # enough to outgrow the copy's headroom
        ids, xb = copy.finish()
        paths.add("rows" if np.shares_memory(ids, copy._ids) else "all")
        want_xb, want_ids = store.view()
        np.testing.assert_array_equal(ids, want_ids, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(xb, want_xb, err_msg=f"trial {trial}")
        assert store._written is None  # recording stopped
    assert paths == {"rows", "all"}
    copy = store.begin_copy()  # finished without a bulk copy: copies everything then
    store.upsert(np.array([7]), np.ones((1, 4), np.float32))
    ids, xb = copy.finish()
    np.testing.assert_array_equal(ids, store.view()[1])
    np.testing.assert_array_equal(xb, store.view()[0])
    store.upsert(np.array([1]), np.ones((1, 4), np.float32))
    copy = store.begin_copy()
    with pytest.raises(RuntimeError):
        store.begin_copy()  # one copy at a time
    copy.abort()
    store.begin_copy().abort()  # a new copy can start after an abort
