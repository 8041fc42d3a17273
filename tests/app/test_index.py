import hashlib
import json

import faiss
import numpy as np
import pytest

from app.search.index import INDEX_FILE, MANIFEST_FILE, SnapshotError, VectorIndex


def clustered(n=400, dim=16, seed=0):
    """Structured vectors (8 clusters), never i.i.d. noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top(x, ids, q, k, skip=()):
    scores = x @ q
    order = [ids[i] for i in np.argsort(-scores) if ids[i] not in skip]
    return order[:k]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_upsert_search_remove_replace(kind):
    x = clustered()
    ids = np.arange(10, 410)
    index = VectorIndex(16, kind)
    index.upsert(ids, x)
    assert len(index) == 400
    hits = index.search(x[0], 10, exclude={10})
    assert 10 not in [h[0] for h in hits] and len(hits) == 10
    truth = exact_top(x, ids, x[0], 10, skip={10})
    recall = len({h[0] for h in hits} & set(truth)) / 10
    assert recall >= (1.0 if kind == "flat" else 0.8)
    index.remove([int(hits[0][0])])
    assert hits[0][0] not in [h[0] for h in index.search(x[0], 10)]
    # replace id 11 by the query's own vector: it must come back first with score ~1
    index.upsert(np.array([11]), x[0][None])
    top = index.search(x[0], 3, exclude={10})
    assert top[0][0] == 11 and top[0][1] == pytest.approx(1.0, abs=1e-4)
    assert len([h for h in index.search(x[0], 50) if h[0] == 11]) == 1
    np.testing.assert_allclose(index.vector(11), x[0], atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_allowed_filter_and_small_catalogue(kind):
    x = clustered(20)
    index = VectorIndex(16, kind)
    index.upsert(np.arange(20), x)
    hits = index.search(x[0], 10, allowed=np.array([1, 2, 3, 999]), exclude={2})  # 999: unknown
    assert {h[0] for h in hits} == {1, 3}
    assert index.search(x[0], 10, allowed=np.array([999])) == []
    assert index.search(x[0], 10, allowed=np.array([], np.int64)) == []
    scored = index.search(x[0], 2, allowed=np.arange(5, 20))  # the best two of the allowed
    best = sorted(range(5, 20), key=lambda i: -float(x[i] @ x[0]))[:2]
    assert [h[0] for h in scored] == best
    assert len(index.search(x[0], 100, exclude={0})) == 19
    assert VectorIndex(16, kind).search(x[0], 5) == []


def test_negative_ids_rejected():
    with pytest.raises(ValueError):
        VectorIndex(4).upsert(np.array([-1]), np.ones((1, 4), np.float32))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_snapshot_round_trip(tmp_path, kind):
    x = clustered(100)
    index = VectorIndex(16, kind)
    index.upsert(np.arange(100), x)
    index.remove([5, 6])
    index.save(tmp_path, last_seq=42, model_version="m1")
    again = VectorIndex(16, kind)
    manifest = again.load(tmp_path, model_version="m1")
    assert manifest.last_seq == 42 and again.ids() == index.ids()
    assert again.search(x[7], 5) == index.search(x[7], 5)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_captured_snapshot_ignores_later_writes(tmp_path, kind):
    """capture() copies under the lock and serialises later: writes that land in between must
    not leak into the snapshot."""
    x = clustered(120)
    index = VectorIndex(16, kind)
    index.upsert(np.arange(100), x[:100])
    captured = index.capture(last_seq=7, model_version="m1")
    expected = index.search(x[3], 10)
    index.upsert(np.arange(100, 120), x[100:])  # added after the capture
    index.upsert(np.array([3]), x[50][None])  # replaced after the capture
    captured.write(tmp_path)
    again = VectorIndex(16, kind)
    assert again.load(tmp_path, model_version="m1").count == 100
    assert again.ids() == set(range(100))
    assert again.search(x[3], 10) == expected


def test_flat_snapshots_are_the_raw_arrays_and_old_faiss_ones_still_load(tmp_path):
    """Flat snapshots hold the ids then the vectors, nothing else; a snapshot written in FAISS'
    format by an earlier version (its manifest has no format) loads the same."""
    x = clustered(50)
    ids = np.arange(100, 150)
    index = VectorIndex(16)
    index.upsert(ids, x)
    manifest = index.save(tmp_path / "raw", last_seq=3, model_version="m1")
    raw = (tmp_path / "raw" / INDEX_FILE).read_bytes()
    assert manifest.format == "flat-raw-v1" and raw == ids.astype("<i8").tobytes() + x.tobytes()

    old = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    old.add_with_ids(x, ids)
    data = faiss.serialize_index(old).tobytes()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / INDEX_FILE).write_bytes(data)
    fields = {"last_seq": 3, "count": 50, "model_version": "m1", "kind": "flat", "removed": []}
    fields["sha256"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "old" / MANIFEST_FILE).write_text(json.dumps(fields))
    again = VectorIndex(16)
    assert again.load(tmp_path / "old", model_version="m1").format == "faiss"
    assert again.ids() == set(ids.tolist())
    assert again.search(x[7], 5) == index.search(x[7], 5)


def test_bad_snapshots_are_detected(tmp_path):
    index = VectorIndex(16)
    index.upsert(np.arange(10), clustered(10))
    with pytest.raises(SnapshotError):
        VectorIndex(16).load(tmp_path, model_version="m1")  # missing
    index.save(tmp_path, last_seq=1, model_version="m1")
    with pytest.raises(SnapshotError, match="serving"):
        VectorIndex(16).load(tmp_path, model_version="m2")  # another model
    data = (tmp_path / INDEX_FILE).read_bytes()
    (tmp_path / INDEX_FILE).write_bytes(data[:-7] + bytes(7))  # same size, other bytes
    with pytest.raises(SnapshotError, match="checksum"):
        VectorIndex(16).load(tmp_path, model_version="m1")
    (tmp_path / INDEX_FILE).write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(SnapshotError, match="torn"):
        VectorIndex(16).load(tmp_path, model_version="m1")
    with pytest.raises(SnapshotError, match="torn"):  # a catalogue of another vector size
        VectorIndex(8).load(tmp_path, model_version="m1")
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(SnapshotError):
        VectorIndex(16).load(tmp_path, model_version="m1")


def test_hnsw_compaction_drops_tombstones_and_stale_copies():
    x = clustered(200)
    index = VectorIndex(16, "hnsw")
    index.upsert(np.arange(200), x)
    assert not index.needs_compaction()
    index.remove(list(range(10)))
    index.upsert(np.arange(10, 25), x[:15])  # 15 replaced: stale copies stay in the graph
    assert index.needs_compaction()
    before = index.search(x[3], 10)
    index.compact()
    assert not index.needs_compaction()
    assert index._index.ntotal == 190 and index.ids() == set(range(10, 200))
    assert index.search(x[3], 10) == before


def assert_index_holds(index, expected: dict[int, np.ndarray]) -> None:
    """The index's live ids and current vectors are exactly `expected`."""
    assert index.ids() == set(expected)
    for movie_id, vector in expected.items():
        np.testing.assert_array_equal(index.vector(movie_id), vector)


def test_hnsw_compaction_keeps_every_write_made_while_it_runs():
    """Writes between every step of an online compaction (new ids, replaced ids, deleted ids,
    ids deleted before their chunk was copied and ids re-added after their delete) all reach the
    new graph, and the graph the rebuild swaps in holds no tombstones from before it."""
    x = clustered(1200, seed=1)
    index = VectorIndex(16, "hnsw")
    index.upsert(np.arange(600), x[:600])
    index.remove(list(range(100)))  # 100 tombstones: above 10 % of the graph
    expected = {i: x[i] for i in range(100, 600)}
    rng = np.random.default_rng(2)
    fresh_ids = iter(range(600, 1200))

    def writes() -> None:
        for _ in range(15):
            op = rng.integers(3)
            if op == 0:  # a new movie
                i = next(fresh_ids)
                index.upsert(np.array([i]), x[i][None])
                expected[i] = x[i]
            elif op == 1 and expected:  # a replaced movie
                i = int(rng.choice(sorted(expected)))
                v = x[int(rng.integers(1200))]
                index.upsert(np.array([i]), v[None])
                expected[i] = v
            elif expected:  # a deleted one
                i = int(rng.choice(sorted(expected)))
                index.remove([i])
                del expected[i]

    assert index.needs_compaction()
    job = index.begin_compaction(chunk=128)
    writes()
    index.remove([599])  # deleted before its chunk (the last) is copied
    expected.pop(599, None)
    copied = 0
    while index.compaction_copy(job):
        copied += 1
        writes()
    index.upsert(np.array([599]), x[599][None])  # and back after its chunk was read
    expected[599] = x[599]
    assert copied == 3  # four chunks of at most 128 live ids
    assert index.compaction_catch_up(job) > 0
    writes()  # left for the final catch-up, under the write lock
    assert index.finish_compaction(job)
    assert_index_holds(index, expected)
    assert not index._removed & set(range(100))  # the tombstones from before the start are gone
    assert index._index.ntotal < 600 - 100 + 4 * 15  # live + at most the writes made meanwhile
    for q in rng.choice(sorted(expected), 5):  # the new graph answers from the current vectors
        assert index.search(expected[int(q)], 1)[0][0] == int(q)
    index.compact()  # nothing recorded is left behind: a second compaction can start
    assert_index_holds(index, expected)


def test_hnsw_compaction_against_a_concurrent_writer():
    """A writer thread writing every millisecond (about a database commit's pace; the lock
    prefers writers, so a writer with no pause at all would starve the compaction's reads)
    while compact() runs end to end: the result is the writer's view, whichever rounds its
    writes fell into."""
    import threading
    import time

    x = clustered(3000, seed=3)
    index = VectorIndex(16, "hnsw")
    index.upsert(np.arange(2000), x[:2000])
    index.remove(list(range(0, 2000, 5)))
    expected = {i: x[i] for i in range(2000) if i % 5}
    done = threading.Event()
    writes = [0]

    def writer() -> None:
        rng = np.random.default_rng(4)
        while not done.is_set():
            i = int(rng.integers(3000))
            if rng.random() < 0.3 and i in expected:
                index.remove([i])
                del expected[i]
            else:
                v = x[int(rng.integers(3000))]
                index.upsert(np.array([i]), v[None])
                expected[i] = v
            writes[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert index.compact(settle=0)
    finally:
        done.set()
        thread.join()
    assert writes[0] >= 10  # writes landed in the copy and the catch-up rounds
    assert_index_holds(index, expected)


def test_a_rebuild_during_compaction_wins():
    """replace_all (a reindex) while a compaction runs: the compaction gives up, the rebuilt
    index stays, and the next compaction can start."""
    x = clustered(300)
    index = VectorIndex(16, "hnsw")
    index.upsert(np.arange(300), x)
    index.remove(list(range(50)))
    job = index.begin_compaction()
    with pytest.raises(RuntimeError, match="already running"):
        index.begin_compaction()
    while index.compaction_copy(job):
        pass
    index.replace_all(np.arange(10), x[:10])
    assert not index.finish_compaction(job)
    assert_index_holds(index, {i: x[i] for i in range(10)})
    index.begin_compaction()  # the recording was reset


def test_shutdown_stops_a_running_compaction():
    """stop_compactions() (shutdown) makes a running rebuild give up after its current chunk and
    keeps any new one from starting; the index keeps its tombstones and stays correct."""
    import threading
    import time

    x = clustered(20_000, seed=5)
    index = VectorIndex(16, "hnsw")
    index.upsert(np.arange(20_000), x)
    index.remove(list(range(0, 20_000, 4)))
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(index.compact(chunk=500)))
    thread.start()
    while index._touched is None and thread.is_alive():  # wait until the rebuild has begun
        time.sleep(0.001)
    index.stop_compactions()
    thread.join(timeout=30)
    assert outcome == [False]
    assert index._touched is None and index.needs_compaction()  # nothing was swapped in
    assert index.ids() == {i for i in range(20_000) if i % 4}
    assert index.search(x[1], 1)[0][0] == 1
    assert not index.compact()  # and none starts again


def faiss_arrays(index: faiss.IndexIDMap2) -> list[int]:
    """Where the arrays an HNSW add grows live in memory."""
    inner = faiss.downcast_index(index.index)
    storage = faiss.downcast_index(inner.storage)
    arrays = (index.id_map, inner.hnsw.levels, inner.hnsw.offsets, inner.hnsw.neighbors)
    return [int(a.data()) for a in (*arrays, storage.codes)]


def test_a_loaded_hnsw_graph_takes_its_first_write_without_reallocating(tmp_path):
    """FAISS sizes a deserialised graph's arrays exactly, so the first add used to copy them all
    (0.7 s at 1M movies, under the write lock); the load now leaves room, and the graph it
    loads is the one that was saved."""
    x = clustered(500)
    saved = VectorIndex(16, "hnsw")
    saved.upsert(np.arange(499), x[:499])
    saved.save(tmp_path, last_seq=1, model_version="m")
    raw = faiss.deserialize_index(np.fromfile(tmp_path / INDEX_FILE, dtype=np.uint8))
    before = faiss_arrays(raw)
    raw.add_with_ids(x[499:], np.array([499]))
    assert faiss_arrays(raw) != before  # what a plain load does on its first add

    loaded = VectorIndex(16, "hnsw")
    loaded.load(tmp_path, model_version="m")
    assert faiss.serialize_index(loaded._index).tobytes() == (tmp_path / INDEX_FILE).read_bytes()
    before = faiss_arrays(loaded._index)
    loaded.upsert(np.array([499]), x[499:])
    assert faiss_arrays(loaded._index) == before
    assert loaded.search(x[499], 1)[0][0] == 499


def test_hnsw_widens_past_tombstones_to_return_k_live_movies():
    x = clustered(400)
    hnsw, flat = VectorIndex(16, "hnsw"), VectorIndex(16)
    hnsw.upsert(np.arange(400), x)
    flat.upsert(np.arange(400), x)
    query = x[0]
    nearest = [i for i, _ in flat.search(query, 60)]
    hnsw.remove(nearest[1:])  # tombstones fill the query's neighbourhood (59 of the top 60)
    flat.remove(nearest[1:])
    got = hnsw.search(query, 10, exclude={0})
    want = flat.search(query, 10, exclude={0})
    assert len(got) == 10 and not set(nearest) & {i for i, _ in got}
    assert len({i for i, _ in got} & {i for i, _ in want}) >= 9  # HNSW is approximate
