"""SQLAlchemy base (with a naming convention for Alembic), engine and session factories."""

from __future__ import annotations

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    """SQLite: WAL + synchronous=FULL + foreign keys, so an acknowledged commit survives a crash.
    PostgreSQL: pre-ping and a short connect timeout so an outage answers fast
    instead of hanging, and no JIT."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args: dict = {}
    if url.startswith("postgresql"):
        # JIT compiles plans whose estimated cost is high: never worth it for this service's
        # small indexed reads, and right after a bulk import, before autovacuum has analysed
        # the tables, the cards' read was estimated high enough to spend 9 ms compiling on
        # every similar-movies answer (docs/PERFORMANCE.md section 1).
        connect_args = {"connect_timeout": 2, "options": "-c jit=off"}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=5,
        connect_args=connect_args,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
