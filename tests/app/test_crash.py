"""Acknowledged writes survive SIGKILL at every failpoint and at random times (issue 4).

Fast tier: every failpoint once, two random-kill rounds; each on SQLite and on PostgreSQL.
Soak tier (`pytest --soak`): more random-kill rounds on both databases.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select

from app.failpoints import POINTS
from app.movies.models import Movie, MovieVector
from app.movies.repository import from_bytes
from app.search.index import VectorIndex
from tests.app.conftest import reset_postgres
from tests.app.server import ServerProcess
from tests.helpers import image_bytes

IMG = image_bytes("JPEG", seed=7)


def _env(tiny_models, data_dir, db_url, **extra) -> dict[str, str]:
    env = {
        "MOVIEREC_DATA_DIR": str(data_dir),
        "MOVIEREC_DATABASE_URL": db_url,
        "MOVIEREC_TEXT_MODEL": tiny_models["text_model"],
        "MOVIEREC_IMAGE_MODEL": tiny_models["image_model"],
        "MOVIEREC_IMAGE_WEIGHTS": tiny_models["image_weights"],
        "MOVIEREC_DEVICE": "cpu",
        "MOVIEREC_MAX_PENDING_INGESTS": "8",
        "MOVIEREC_INGEST_WAIT_SECONDS": "30",
    }
    env.update({f"MOVIEREC_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def post(url: str, external_id: str, timeout: float = 30) -> int | None:
    """The new id when acknowledged (2xx), None when the request failed."""
    try:
        r = httpx.post(
            url + "/movies",
            data={
                "title": external_id,
                "plot": f"plot of {external_id}",
                "genres": "Horror",
                "external_id": external_id,
            },
            files=[("images", ("p.jpg", IMG, "image/jpeg"))],
            timeout=timeout,
        )
    except httpx.HTTPError:
        return None
    return r.json()["id"] if r.status_code in (200, 201) else None


def check_consistent(
    server: ServerProcess,
    db_url: str,
    data_dir,
    acked: dict[str, int],
    deleted: set[int],
    delete_tried: set[int] | frozenset[int] = frozenset(),
) -> dict:
    """Live server: acked writes present unless a delete of them was sent (a kill may land after
    its commit, before its answer), acked deletes gone; then a clean stop and snapshot ==
    database."""
    lost = [
        e
        for e, i in acked.items()
        if i not in deleted
        and i not in delete_tried
        and httpx.get(f"{server.url}/movies/{i}", timeout=10).status_code != 200
    ]
    resurrected = [
        i for i in deleted if httpx.get(f"{server.url}/movies/{i}", timeout=10).status_code != 404
    ]
    ready = httpx.get(server.url + "/ready", timeout=10).json()
    server.stop()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = {
            i: from_bytes(v)
            for i, v in conn.execute(select(MovieVector.movie_id, MovieVector.vector))
        }
        movies = set(conn.scalars(select(Movie.id)))
    engine.dispose()
    index = VectorIndex(256)
    index.load(data_dir / "index", model_version=ready["model_version"])
    mismatched = [
        i
        for i, v in stored.items()
        if index.vector(i) is None or not np.allclose(index.vector(i), v, atol=1e-6)
    ]
    return {
        "lost": lost,
        "resurrected": resurrected,
        "ready": ready["index_consistent"],
        "index_equals_db": index.ids() == set(stored) == movies,
        "mismatched": mismatched,
        "tmp_files": sorted(p.name for p in (data_dir / "index").glob("*.tmp")),
    }


def assert_clean(report: dict) -> None:
    assert report["lost"] == [] and report["resurrected"] == [] and report["mismatched"] == []
    assert report["ready"] and report["index_equals_db"] and report["tmp_files"] == []


@pytest.fixture(params=["sqlite", "postgres"])
def crash_db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crash.db'}"
    url = request.getfixturevalue("pg_database")
    reset_postgres(url)
    return url


def test_every_failpoint(tiny_models, tmp_path, crash_db):
    db_url = crash_db
    data_dir = tmp_path / "data"
    server = ServerProcess(_env(tiny_models, data_dir, db_url, snapshot_every=3), tmp_path)
    acked: dict[str, int] = {}
    deleted: set[int] = set()
    server.start()
    for i in range(2):
        acked[f"base-{i}"] = post(server.url, f"base-{i}")
    server.kill()
    for point in POINTS:
        if point == "replay_midway":
            server.start()
            for i in range(4):
                acked[f"replay-{i}"] = post(server.url, f"replay-{i}")
            victim = acked["replay-0"]
            assert httpx.delete(f"{server.url}/movies/{victim}").status_code == 204
            deleted.add(victim)
            server.kill()  # the change log now holds entries the snapshot has not seen
            server.start(failpoint=point, wait=False)
            assert server.wait_exit() == -9, "replay failpoint was not reached"
            continue
        server.start(failpoint=point)
        for i in range(4):  # snapshot_every=3: the snapshot points fire within a few writes
            movie_id = post(server.url, f"{point}-{i}", timeout=15)
            if movie_id is None:  # the server killed itself at the failpoint
                break
            acked[f"{point}-{i}"] = movie_id
        assert server.wait_exit(timeout=60) == -9, f"{point} was not reached"
        seconds = server.start()  # must not crash-loop
        print(f"\n[crash] {point}: restart ready in {seconds:.1f}s")
        server.kill()
    server.start()
    report = check_consistent(server, db_url, data_dir, acked, deleted)
    print(
        f"[crash] {db_url.split(':')[0]} failpoints: {len(POINTS)} points, "
        f"{len(acked)} acknowledged writes, "
        f"{len(report['lost'])} lost, {len(report['mismatched'])} vector mismatches"
    )
    assert_clean(report)


def _load(
    url: str,
    acked: dict,
    deleted: set,
    delete_tried: set,
    stop: threading.Event,
    prefix: str,
    rng: random.Random,
):
    n = 0
    while not stop.is_set():
        ext = f"{prefix}-{n}"
        n += 1
        movie_id = post(url, ext, timeout=10)
        if movie_id is not None:
            acked[ext] = movie_id
            if rng.random() < 0.2:  # the deleter's share
                delete_tried.add(movie_id)
                try:
                    if httpx.delete(f"{url}/movies/{movie_id}", timeout=10).status_code == 204:
                        deleted.add(movie_id)
                except httpx.HTTPError:
                    pass


def run_random_kills(tiny_models, tmp_path, db_url, rounds: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    server = ServerProcess(_env(tiny_models, data_dir, db_url, snapshot_every=7), tmp_path)
    acked: dict[str, int] = {}
    deleted: set[int] = set()
    delete_tried: set[int] = set()
    ready_times = []
    for r in range(rounds):
        ready_times.append(server.start())
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=_load,
                args=(
                    server.url,
                    acked,
                    deleted,
                    delete_tried,
                    stop,
                    f"r{r}w{w}",
                    random.Random(seed * 100 + r * 10 + w),
                ),
            )
            for w in range(3)
        ]
        for w in workers:
            w.start()
        time.sleep(rng.uniform(2.0, 5.0))
        server.kill()
        stop.set()
        for w in workers:
            w.join(30)
    ready_times.append(server.start())
    report = check_consistent(server, db_url, data_dir, acked, deleted, delete_tried)
    report.update(
        acked=len(acked), deletes=len(deleted), kills=rounds, max_ready_s=max(ready_times)
    )
    return report


def test_random_kills_under_load(tiny_models, tmp_path, crash_db, request):
    rounds = 8 if request.config.getoption("--soak") else 2
    report = run_random_kills(tiny_models, tmp_path, crash_db, rounds)
    print(
        f"\n[crash] {crash_db.split(':')[0]}: {report['kills']} SIGKILLs, "
        f"{report['acked']} acknowledged "
        f"writes, {report['deletes']} deletes, {len(report['lost'])} lost, "
        f"{len(report['mismatched'])} mismatches, max time to ready {report['max_ready_s']:.1f}s"
    )
    assert report["acked"] > 0
    assert_clean(report)
