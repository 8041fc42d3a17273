"""PostgreSQL restarted mid-traffic: 503 + Retry-After fast, never 500 or a hang; recovers alone.
Also: the durability settings we rely on are on (PostgreSQL and SQLite)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import make_engine
from tests.app.conftest import reset_postgres
from tests.app.util import post_movie


def _cluster() -> list[str]:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if not versions or not shutil.which("pg_ctlcluster"):
        pytest.skip("pg_ctlcluster / a local cluster is not available")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _pg(action: str, *extra: str) -> None:
    subprocess.run([*_cluster(), action, *extra], check=True, capture_output=True, timeout=60)


def test_durability_settings_are_on(pg_database, tmp_path):
    engine = make_engine(pg_database)
    with engine.connect() as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert conn.execute(text(f"SHOW {name}")).scalar() == "on", name
    engine.dispose()
    sqlite = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with sqlite.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    sqlite.dispose()


def test_postgres_restart_mid_traffic(make_client, pg_database):
    _cluster()
    reset_postgres(pg_database)
    client = make_client(pg_database)
    movie = post_movie(client, seed=1).json()
    try:
        _pg("stop", "-m", "immediate")
        statuses, slowest = [], 0.0
        for i in range(5):
            started = time.perf_counter()
            r = post_movie(client, seed=10 + i, title=f"during outage {i}")
            slowest = max(slowest, time.perf_counter() - started)
            statuses.append(r.status_code)
            assert r.status_code == 503, r.text
            assert r.headers.get("retry-after") and r.json()["error"] == "DatabaseUnavailable"
        r = client.get(f"/movies/{movie['id']}/similar")
        assert r.status_code == 503
        assert client.get("/ready").status_code == 503
        assert client.get("/health").status_code == 200
        print(f"\n[outage] writes during outage: {statuses}, slowest {slowest:.2f}s")
        assert slowest < 2.0
    finally:
        _pg("start")
    deadline = time.time() + 30
    while time.time() < deadline:
        r = post_movie(client, seed=20, title="after outage")
        if r.status_code == 201:
            break
        assert r.status_code == 503, r.text
        time.sleep(0.5)
    assert r.status_code == 201, "the service did not recover without a restart"
    ready = client.get("/ready").json()
    assert ready["index_consistent"] and ready["indexed"] == 2
