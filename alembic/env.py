"""Alembic environment: the URL comes from the service settings (or the caller's Config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from app.db import Base, make_engine
from app.movies import models  # noqa: F401  (registers the tables)

config = context.config
url = config.attributes.get("database_url")
if url is None:
    from app.config import Settings

    url = Settings().resolved_database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url) if url.startswith("sqlite") else None
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
