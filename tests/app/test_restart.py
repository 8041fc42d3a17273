"""Restarting gives the same answers; a missing or corrupt snapshot is rebuilt from the database."""

import pytest

from app.search.index import INDEX_FILE, MANIFEST_FILE
from tests.app.util import post_movie


def answers(client, ids):
    return {
        i: [
            (x["movie"]["id"], round(x["score"], 5))
            for x in client.get(f"/movies/{i}/similar", params={"k": 5}).json()["results"]
        ]
        for i in ids
    }


@pytest.mark.parametrize("index_kind", ["flat", "hnsw"])
def test_restart_snapshot_and_rebuild(make_client, database_url, tmp_path, index_kind):
    """Background snapshots while writing (every 4 changes), the shutdown snapshot, a restart
    from it, a rebuild without it and with a corrupt manifest: the same answers each time."""
    data_dir = tmp_path / "svc"
    first = make_client(database_url, data_dir=data_dir, snapshot_every=4, index_kind=index_kind)
    ids = [
        post_movie(
            first,
            title=f"m{i}",
            plot=f"story {i} of a ghost and a dog",
            seed=i,
            genres=["Horror" if i % 2 else "Comedy"],
        ).json()["id"]
        for i in range(9)
    ]
    first.delete(f"/movies/{ids[3]}")
    ids.remove(ids[3])
    expected = answers(first, ids)
    first.__exit__(None, None, None)  # clean shutdown writes a snapshot

    again = make_client(database_url, data_dir=data_dir, index_kind=index_kind)
    assert answers(again, ids) == expected
    assert again.get("/ready").json()["index_consistent"]
    again.__exit__(None, None, None)

    (data_dir / "index" / INDEX_FILE).unlink()
    rebuilt = make_client(database_url, data_dir=data_dir, index_kind=index_kind)
    assert answers(rebuilt, ids) == expected
    rebuilt.__exit__(None, None, None)

    (data_dir / "index" / MANIFEST_FILE).write_text("garbage")
    corrupt = make_client(database_url, data_dir=data_dir, index_kind=index_kind)
    assert answers(corrupt, ids) == expected


def test_the_maintenance_thread_compacts_an_hnsw_graph(make_client, tmp_path):
    """Deletes past 10 % of the graph: the next background snapshot rebuilds the graph without
    them (off the write lock), and the snapshot it writes has no tombstones left."""
    import json

    data_dir = tmp_path / "compact"
    client = make_client(
        f"sqlite:///{tmp_path / 'c.db'}", data_dir=data_dir, snapshot_every=10, index_kind="hnsw"
    )
    state = client.app.state.movierec
    ids = [post_movie(client, title=f"m{i}", seed=i).json()["id"] for i in range(8)]
    for movie_id in ids[:2]:  # 2 of 8 tombstoned; the 10th change makes the one snapshot due
        assert client.delete(f"/movies/{movie_id}").status_code == 204
    state.maintenance.submit(lambda: None).result(timeout=60)  # that snapshot has landed
    assert state.index._index.ntotal == 6 and not state.index._removed
    manifest = json.loads((data_dir / "index" / MANIFEST_FILE).read_text())
    assert manifest["count"] == 6 and manifest["removed"] == []
    assert client.get("/ready").json()["index_consistent"]
    found = {r["movie"]["id"] for r in client.get(f"/movies/{ids[2]}/similar").json()["results"]}
    assert found == set(ids[3:])


def test_changes_after_the_snapshot_are_replayed(make_client, tmp_path, database_url):
    """A crash after the last snapshot: the change log brings the index up to date."""
    from app.search.sync import snapshot

    data_dir = tmp_path / "svc"
    c = make_client(database_url, data_dir=data_dir, snapshot_every=1000)
    a = post_movie(c, title="a", seed=1).json()["id"]
    snapshot(c.app.state.movierec)  # snapshot holds only `a`
    b = post_movie(c, title="b", seed=2).json()["id"]
    c.delete(f"/movies/{a}")
    # simulate a crash: no shutdown snapshot (drop the client without running the lifespan exit)
    state = c.app.state.movierec
    state.engine.dispose()
    fresh = make_client(database_url, data_dir=data_dir)
    ready = fresh.get("/ready").json()
    assert ready["index_consistent"] and ready["indexed"] == 1
    assert fresh.get(f"/movies/{b}/similar").json()["results"] == []


def test_writes_do_not_wait_for_the_snapshot_on_disk(make_client, tmp_path):
    """Snapshots are copied, hashed, written and fsynced on the maintenance thread. Held up
    there, it must not hold up a single write, only one snapshot is set off meanwhile, and it
    captures the index as of when it runs (every write acknowledged by then)."""
    import json
    import threading

    data_dir = tmp_path / "bg"
    client = make_client(f"sqlite:///{tmp_path / 'bg.db'}", data_dir=data_dir, snapshot_every=3)
    state = client.app.state.movierec
    disk_busy = threading.Event()
    state.maintenance.submit(disk_busy.wait, 60)  # the "disk" is stuck
    codes = [post_movie(client, title=f"m{i}", seed=i).status_code for i in range(7)]
    assert codes == [201] * 7  # two snapshots were due and none of the writes waited
    manifest = data_dir / "index" / MANIFEST_FILE
    assert json.loads(manifest.read_text())["count"] == 0  # still start-up's empty snapshot
    assert state.snapshot_in_flight  # one snapshot set off; the second due one waits for it
    disk_busy.set()
    state.maintenance.submit(lambda: None).result(timeout=60)  # the queued snapshot landed
    assert json.loads(manifest.read_text())["count"] == 7  # taken when the thread got to it
    codes = [post_movie(client, title=f"n{i}", seed=10 + i).status_code for i in range(3)]
    assert codes == [201] * 3  # 3 changes since that snapshot: due again
    state.maintenance.submit(lambda: None).result(timeout=60)
    assert json.loads(manifest.read_text())["count"] == 10
