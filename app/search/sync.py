"""Keeping the FAISS index equal to the database: snapshot, replay, rebuild, reindex."""

from __future__ import annotations

import logging
import time

import numpy as np
from sqlalchemy import select
from tqdm import tqdm

from app.failpoints import failpoint
from app.movies.models import MovieVector
from app.movies.repository import MovieRepository
from app.search.flat_store import FlatCopy
from app.search.index import IndexSnapshot, SnapshotError
from app.state import AppState

log = logging.getLogger("movierec.index")


def rebuild_from_database(state: AppState) -> int:
    with state.sessions() as session:
        repo = MovieRepository(session)
        chunks = list(repo.iter_vectors())
        last_seq = repo.last_seq()
    ids = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
    vecs = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros((0, 256), np.float32)
    state.index.replace_all(ids, vecs)
    snapshot(state, last_seq)
    return len(ids)


def open_index(state: AppState) -> str:
    """Load the snapshot and replay newer changes; rebuild from the database when the snapshot is
    missing, torn, for another model, or disagrees with the database. Returns what it did."""
    started = time.perf_counter()
    directory = state.settings.index_dir
    try:
        manifest = state.index.load(directory, model_version=state.model_version)
        replayed = replay(state, manifest.last_seq)
        with state.sessions() as session:
            live = MovieRepository(session).live_ids()
        if live != state.index.ids():
            raise SnapshotError(
                f"index has {len(state.index)} ids, database {len(live)} after replay"
            )
        how = f"snapshot (seq {manifest.last_seq}) + {replayed} replayed changes"
    except SnapshotError as exc:
        log.warning("rebuilding the index from the database: %s", exc)
        n = rebuild_from_database(state)
        how = f"rebuilt from database ({n} vectors)"
    log.info("index ready in %.2fs: %s", time.perf_counter() - started, how)
    return how


def replay(state: AppState, after_seq: int) -> int:
    with state.sessions() as session:
        repo = MovieRepository(session)
        changes = repo.changes_after(after_seq)
        upserts = {movie_id for _, movie_id, op in changes if op == "upsert"}
        vectors = repo.vectors(sorted(upserts)) if upserts else {}
    for n, (_, movie_id, op) in enumerate(changes):
        if n == len(changes) // 2:
            failpoint("replay_midway")
        vec = vectors.get(movie_id)
        if op == "upsert" and vec is not None:
            state.index.upsert(np.array([movie_id]), vec[None])
        else:  # deleted, or upserted then deleted later in the log
            state.index.remove([movie_id])
    return len(changes)


def snapshot(state: AppState, last_seq: int | None = None) -> None:
    """Capture and write now. Callers hold the write lock (or own the state alone)."""
    capture_snapshot(state, last_seq).write(state.settings.index_dir)


def capture_snapshot(
    state: AppState, last_seq: int | None = None, prepared: FlatCopy | None = None
) -> IndexSnapshot:
    """The index and the change-log sequence it reflects. Callers hold the write lock, so no
    change slips in between; writing the result to disk can happen after they let go.
    `prepared`: a flat copy bulk-copied before the lock was taken (VectorIndex.prepare_capture).
    An HNSW graph is captured with its tombstones: it is compacted before this, off the lock
    (`compact_if_needed`)."""
    if last_seq is None:
        with state.sessions() as session:
            last_seq = MovieRepository(session).last_seq()
    state.changes_since_snapshot = 0
    return state.index.capture(
        last_seq=last_seq, model_version=state.model_version, prepared=prepared
    )


def compact_if_needed(state: AppState) -> None:
    """Rebuild an HNSW graph whose tombstones and stale copies passed 10 % of it. Called on the
    maintenance thread with no lock held: writes wait only for the last catch-up and the swap."""
    if state.index.needs_compaction():
        started = time.perf_counter()
        swapped = state.index.compact()
        log.info(
            "compacted the HNSW graph in %.1fs%s",
            time.perf_counter() - started,
            "" if swapped else " (discarded: the index was rebuilt meanwhile, or shutting down)",
        )


def stale_vector_count(state: AppState) -> int:
    with state.sessions() as session:
        versions = session.scalars(select(MovieVector.model_version).distinct()).all()
        if all(v == state.model_version for v in versions):
            return 0
        return int(
            session.query(MovieVector)
            .filter(MovieVector.model_version != state.model_version)
            .count()
        )


def reindex(state: AppState, *, batch: int = 2000, progress: bool = True) -> int:
    """Recompute every vector from the stored raw features (no image decoding), commit, then swap
    a freshly built index in atomically."""
    n = 0
    with state.sessions() as session, state.write_lock:
        repo = MovieRepository(session)
        total = repo.count()
        bar = tqdm(total=total, desc="reindex", unit="movie", disable=not progress)
        for ids, text, image in repo.iter_features(batch, dims=state.embedder.feature_dims):
            repo.update_vectors(ids, state.embedder.fuse(text, image), state.model_version)
            n += len(ids)
            bar.update(len(ids))
        session.commit()
        state.cards.clear()
        bar.close()
    rebuild_from_database(state)
    return n
