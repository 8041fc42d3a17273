"""Concurrent writers, readers and deleters against one real server; ingest back-pressure."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.app.server import ServerProcess
from tests.app.test_crash import IMG, _env, post
from tests.app.util import post_movie


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_concurrent_writers_readers_deleters(tiny_models, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'conc.db'}"
    server = ServerProcess(
        _env(tiny_models, tmp_path / "data", db_url, snapshot_every=25), tmp_path
    )
    server.start()
    url = server.url
    statuses: list[int] = []
    deleted: set[int] = set()
    live: list[int] = []
    violations: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        n = 0
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                r = c.post(
                    "/movies",
                    data={"title": f"w{w}-{n}", "plot": f"plot {w} {n}", "genres": "Comedy"},
                    files=[("images", ("p.jpg", IMG, "image/jpeg"))],
                )
                statuses.append(r.status_code)
                if r.status_code == 201:
                    movie_id = r.json()["id"]
                    got = c.get(f"/movies/{movie_id}")  # read-your-writes on the same server
                    if got.status_code != 200:
                        violations.append(f"read-your-writes {movie_id}: {got.status_code}")
                    with lock:
                        live.append(movie_id)
                n += 1

    def deleter() -> None:
        rng = random.Random(0)
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                with lock:
                    victim = live.pop(rng.randrange(len(live))) if len(live) > 3 else None
                if victim is None:
                    time.sleep(0.05)
                    continue
                r = c.delete(f"/movies/{victim}")
                statuses.append(r.status_code)
                if r.status_code == 204:
                    with lock:
                        deleted.add(victim)

    def reader() -> None:
        rng = random.Random(1)
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                with lock:
                    query = rng.choice(live) if live else None
                    gone_before = set(deleted)
                if query is None:
                    time.sleep(0.05)
                    continue
                r = c.get(f"/movies/{query}/similar", params={"k": 20})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    back = {x["movie"]["id"] for x in r.json()["results"]} & gone_before
                    if back:
                        violations.append(f"deleted ids {back} in results of {query}")

    # warm up, then measure memory over a sustained mixed load
    for i in range(20):
        assert post(url, f"warm-{i}") is not None
    rss_start = rss_mib(server.proc.pid)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(2)] + [
        threading.Thread(target=deleter)
    ]
    for t in threads:
        t.start()
    time.sleep(12)
    stop.set()
    for t in threads:
        t.join(60)
    rss_end = rss_mib(server.proc.pid)
    ready = httpx.get(url + "/ready").json()
    server.stop()
    server_errors = [s for s in statuses if s >= 500]
    print(
        f"\n[concurrency] {len(statuses)} requests, {len(deleted)} deletes, "
        f"{len(server_errors)} 5xx, {len(violations)} violations, "
        f"RSS {rss_start:.0f} -> {rss_end:.0f} MiB"
    )
    assert server_errors == [] and violations == []
    assert ready["index_consistent"]
    assert rss_end - rss_start < 150, "memory grew under load"


def test_excess_ingests_get_429_quickly(make_client, tmp_path):
    client = make_client(
        f"sqlite:///{tmp_path / 'bp.db'}", max_pending_ingests=1, ingest_wait_seconds=0.05
    )
    batcher = client.app.state.movierec.batcher
    with ThreadPoolExecutor(2) as pool:
        with batcher.device_lock:  # the encoders are "busy"
            # The worker takes the first movie and blocks; the second fills the one-slot queue.
            held = [pool.submit(post_movie, client, seed=i) for i in (1, 2)]
            deadline = time.monotonic() + 10
            while batcher.queued() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.perf_counter()
            r = post_movie(client, seed=3)
            took = time.perf_counter() - started
        held_codes = [f.result(timeout=60).status_code for f in held]
    assert (
        r.status_code == 429 and r.headers["retry-after"] and r.json()["error"] == "TooManyRequests"
    )
    assert took < 5, "a refused ingest must not queue"
    assert held_codes == [201, 201]  # the queued ones complete
    assert post_movie(client, seed=4).status_code == 201  # the queue is free again
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda i: post_movie(client, seed=i).status_code, range(8)))
    assert set(codes) <= {201, 429}
