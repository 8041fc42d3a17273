"""App fixtures: the API on SQLite and on the real local PostgreSQL, with tiny encoders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.main import create_app
from app.search.embedder import Embedder
from tests.app.util import CATALOG, post_movie

PG_ADMIN_URL = os.environ.get(
    "MOVIEREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway database on the local server, dropped at the end of the session."""
    try:
        # NullPool: a fresh connection each time, so the outage test's restart breaks nothing here
        admin = create_engine(
            PG_ADMIN_URL,
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"connect_timeout": 3},
        )
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    name = f"movierec_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_postgres(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'movierec.db'}"
    url = request.getfixturevalue("pg_database")
    reset_postgres(url)
    return url


def tiny_settings(tiny_models: dict[str, str], data_dir: Path, **overrides) -> Settings:
    values = dict(
        data_dir=data_dir,
        device="cpu",
        snapshot_every=5,
        ingest_wait_seconds=30,
        text_model=tiny_models["text_model"],
        image_model=tiny_models["image_model"],
        image_weights=tiny_models["image_weights"],
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_models, tmp_path_factory) -> Embedder:
    """Built once: every app in the session shares the same loaded tiny encoders."""
    return Embedder.from_settings(tiny_settings(tiny_models, tmp_path_factory.mktemp("e")))


@pytest.fixture
def make_client(tiny_models, tiny_embedder, tmp_path):
    """Factory: a TestClient (lifespan run) for given settings overrides; closes on teardown."""
    opened: list[TestClient] = []

    def factory(database_url: str | None = None, data_dir: Path | None = None, **overrides):
        settings = tiny_settings(
            tiny_models, data_dir or tmp_path / "data", database_url=database_url, **overrides
        )
        client = TestClient(create_app(settings, lambda _s: tiny_embedder))
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client, database_url) -> TestClient:
    return make_client(database_url)


@pytest.fixture
def catalog(client):
    ids = []
    for title, plot, genres, seed in CATALOG:
        r = post_movie(
            client, title=title, plot=plot, genres=genres, seed=seed, external_id=f"ext-{seed}"
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids
