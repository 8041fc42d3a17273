"""`movierec serve | migrate | import | reindex`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_service_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run migrations, then the HTTP service (uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("import", help="bulk-load a dataset folder into the database and index")
    p.add_argument("dataset", type=Path, help="folder with movies.csv, plots.csv, images/<id>/")
    p.add_argument("--batch-size", type=int, default=32, help="movies per encoder batch / commit")
    p.add_argument("--max-images", type=int, default=16, help="images per movie to encode")
    p.add_argument("--limit", type=int, help="import only the first N movies")
    p.add_argument(
        "--replace",
        action="store_true",
        help="re-embed movies already imported (default: skip them, so a rerun resumes)",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("api-key", help="make a new API key and the MOVIEREC_API_KEYS entry for it")
    p.add_argument("--scope", choices=("read", "write"), default="read")
    p.set_defaults(func=cmd_api_key)

    p = sub.add_parser(
        "reindex",
        help="recompute every vector from stored features with the "
        "configured checkpoint and swap the index (service stopped)",
    )
    p.set_defaults(func=cmd_reindex)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import Settings
    from app.migrations import upgrade_database

    upgrade_database(Settings().resolved_database_url)
    uvicorn.run("app.main:app", host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.migrations import upgrade_database

    url = Settings().resolved_database_url
    upgrade_database(url)
    print(f"database at head: {url.split('@')[-1]}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.bulk import import_dataset
    from app.config import Settings
    from app.lifespan import build_state
    from app.search.sync import snapshot

    logging.basicConfig(level=logging.INFO)
    state = build_state(Settings())
    stats = import_dataset(
        state,
        args.dataset,
        batch_size=args.batch_size,
        max_images=args.max_images,
        limit=args.limit,
        replace=args.replace,
    )
    snapshot(state)
    print(
        f"imported {stats['imported']}, skipped {stats['skipped']} already present, "
        f"{stats['without_images']} without images; index holds {len(state.index)} movies"
    )
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.lifespan import build_state
    from app.search.sync import reindex

    logging.basicConfig(level=logging.INFO)
    state = build_state(Settings())
    n = reindex(state)
    print(f"reindexed {n} movies with {state.model_version}")
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    from app.auth import hash_key, new_key

    key = new_key()
    print(f"key (give to the client, shown once): {key}")
    print(f"add to MOVIEREC_API_KEYS (comma-separated): {args.scope}:{hash_key(key)}")
    return 0
