"""Movie use cases. Write path: decode -> embed (off the lock) -> one transaction -> commit ->
index update. The database commit is the acknowledgement; the index follows it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch
from PIL import Image
from sqlalchemy.orm import Session

from app.errors import MovieNotFound, PayloadTooLarge
from app.failpoints import failpoint
from app.movies.card_cache import CachedCard
from app.movies.explain import ModalityCalibration, explain
from app.movies.images import ImageLimits, decode_image
from app.movies.models import Movie, MovieFeatures, MovieVector
from app.movies.repository import (
    MovieCard,
    MovieRepository,
    from_bytes,
    read_cards,
    to_bytes,
)
from app.movies.schemas import GenreGroupRef, MovieRead
from app.movies.text import clean_text
from app.search.sync import capture_snapshot, compact_if_needed
from app.state import AppState
from app.stopwatch import Stopwatch
from model.genres import GENRE_GROUPS

log = logging.getLogger("movierec.service")


@dataclass
class Upload:
    name: str
    data: bytes


def as_utc(value: datetime) -> datetime:
    """SQLite drops the zone of stored datetimes; they are all written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def movie_read(movie: Movie | MovieCard) -> MovieRead:
    card = MovieCard.from_movie(movie) if isinstance(movie, Movie) else movie
    return MovieRead(
        id=card.id,
        external_id=card.external_id,
        title=card.title,
        plot=card.plot,
        year=card.year,
        genres=card.genres,
        genre_groups=[
            GenreGroupRef(
                id=g, name=GENRE_GROUPS[g], inferred=inferred, confidence=round(confidence, 4)
            )
            for g, inferred, confidence in card.groups
        ],
        model_version=card.model_version,
        image_count=card.image_count,
        created_at=as_utc(card.created_at),
        updated_at=as_utc(card.updated_at),
    )


def labelled_groups(movie: Movie) -> list[int]:
    return [g.group_id for g in movie.groups if not g.inferred]


def all_groups(movie: Movie) -> list[int]:
    """Labelled and inferred: what a genre filter matches."""
    return [g.group_id for g in movie.groups]


def _committed(state: AppState, movie_id: int, groups: list[int]) -> None:
    """After a write of one movie commits (under the write lock): its card leaves the cache and
    the cached genre groups take its new groups (none: deleted)."""
    state.groups.moved(movie_id, groups, state.cards.invalidate([movie_id]))


def assign_groups(
    state: AppState, genres: list[str], vector: np.ndarray
) -> list[tuple[int, bool, float]]:
    """Labelled groups from the genres; else the nearest centroid(s), flagged inferred."""
    labelled = state.mapper.groups_of(genres)
    if labelled:
        return [(g, False, 1.0) for g in labelled]
    return [(g, True, conf) for g, conf in state.centroids.nearest(vector)]


def create_or_replace_movie(
    state: AppState,
    session: Session,
    *,
    title: str,
    plot: str,
    uploads: list[Upload],
    genres: list[str],
    year: int | None,
    external_id: str | None,
) -> tuple[Movie, bool]:
    """Returns (movie, created). An existing external_id is replaced in place (idempotent retry)."""
    s, watch = state.settings, Stopwatch()
    title = clean_text(title, field="title", max_chars=s.max_title_chars)
    plot = clean_text(plot, field="plot", max_chars=s.max_plot_chars)
    if external_id is not None:
        external_id = clean_text(external_id, field="external_id", max_chars=255)
    if len(uploads) > s.max_images:
        raise PayloadTooLarge(f"{len(uploads)} images; at most {s.max_images} per movie")
    limits = ImageLimits(max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)
    target = state.embedder.image_encoder.input_size

    def decode(upload: Upload) -> Image.Image:
        return decode_image(upload.data, name=upload.name, limits=limits, target=target)

    def prepare() -> torch.Tensor:
        # decoded and resized here, in parallel threads, while the worker encodes the plot
        pixels = state.embedder.prepare_from(uploads, decode)
        watch.lap("decode + resize")
        return pixels

    emb = state.batcher.embed_preparing(plot, len(uploads), prepare, wait=s.ingest_wait_seconds)
    watch.lap("embed (queue + encoders)")

    repo = MovieRepository(session)
    with state.write_lock:
        watch.lap("write lock")
        movie = repo.by_external_id(external_id) if external_id else None
        created = movie is None
        old = (labelled_groups(movie), repo.vectors([movie.id]).get(movie.id)) if movie else None
        if movie is None:
            movie = Movie(external_id=external_id, title=title, plot=plot, year=year, genres=genres)
            session.add(movie)
        else:
            movie.title, movie.plot, movie.year, movie.genres = title, plot, year, genres
        repo.set_groups(movie, assign_groups(state, genres, emb.vector))
        session.flush()  # assigns movie.id
        movie.features = MovieFeatures(
            text_model=state.embedder.text_model,
            image_model=state.embedder.image_model,
            text=to_bytes(emb.text),
            image=to_bytes(emb.image),
            image_count=len(uploads),
        )
        movie.vector = MovieVector(model_version=state.model_version, vector=to_bytes(emb.vector))
        repo.log_change(movie.id, "upsert")
        watch.lap("transaction")
        session.commit()  # the acknowledgement point
        watch.lap("commit")
        _committed(state, movie.id, all_groups(movie))
        failpoint("after_commit_before_index")
        if old and old[1] is not None:
            state.centroids.remove(old[0], old[1])
        state.centroids.add(labelled_groups(movie), emb.vector)
        state.index.upsert(np.array([movie.id]), emb.vector[None])
        watch.lap("centroids + index")
        _count_change(state)
        watch.lap("snapshot hand-off")
    if watch.total > state.slow_write_seconds:
        log.warning("slow write of movie %s (%.2f s): %s", movie.id, watch.total, watch)
    failpoint("after_index_before_response")
    return movie, created


def _count_change(state: AppState) -> None:
    """Every SNAPSHOT_EVERY changes, hand a snapshot to the maintenance thread (the caller holds
    the write lock, and keeps nothing of the snapshot's cost). While one snapshot is still on
    its way to the disk, the next waits: the first write after it lands sets it off."""
    state.changes_since_snapshot += 1
    if state.changes_since_snapshot >= state.settings.snapshot_every and not (
        state.snapshot_in_flight
    ):
        state.snapshot_in_flight = True
        state.maintenance.submit(_snapshot_in_background, state)


def _snapshot_in_background(state: AppState) -> None:
    """On the maintenance thread: compact an HNSW graph that needs it (writes go on meanwhile),
    copy the index with writes held up only for the rows written during the copy (flat; an HNSW
    graph is cloned under the write lock), then hash, write and fsync it and re-sample the
    calibration with no lock held, so no write waits for the disk (1 GB at 1M movies)."""
    prepared = None
    try:
        compact_if_needed(state)
        prepared = state.index.prepare_capture()
        if prepared is not None:
            prepared.bulk()  # no lock held: writes go on, the store records their rows
        with state.write_lock:
            captured, prepared = capture_snapshot(state, prepared=prepared), None
        captured.write(state.settings.index_dir)
        refresh_calibration(state)
    except Exception:  # a missed snapshot costs a longer replay at start-up, nothing more
        log.exception("background index snapshot failed")
    finally:
        if prepared is not None:  # failed before the capture took it
            state.index.abort_capture(prepared)
        state.snapshot_in_flight = False


def refresh_calibration(state: AppState) -> None:
    """Re-sample the random-pair similarities that word explanations, as the catalogue grows
    (a service that started empty would otherwise judge closeness by raw cosine forever)."""
    with state.sessions() as session:
        sample = MovieRepository(session).sample_features(2000)
    dims = state.embedder.feature_dims
    usable = [(t, i) for t, i in sample if (t.size, i.size) == dims]  # other encoders' rows
    state.calibration = ModalityCalibration.from_features(usable)


def get_movie(session: Session, movie_id: int) -> Movie:
    movie = MovieRepository(session).get(movie_id, with_data=True)
    if movie is None:
        raise MovieNotFound(f"no movie with id {movie_id}")
    return movie


def update_movie(
    state: AppState,
    session: Session,
    movie_id: int,
    *,
    title: str | None,
    genres: list[str] | None,
    year: int | None,
    fields: set[str],
) -> Movie:
    """Metadata only. New genres re-derive the movie's groups (and move its centroid share)."""
    with state.write_lock:
        movie = get_movie(session, movie_id)
        if "title" in fields and title is not None:
            movie.title = clean_text(title, field="title", max_chars=state.settings.max_title_chars)
        if "year" in fields:
            movie.year = year
        old_groups = labelled_groups(movie)
        vector = from_bytes(movie.vector.vector) if movie.vector else None
        if "genres" in fields:
            movie.genres = [clean_text(g, field="genres", max_chars=100) for g in (genres or [])]
            if vector is not None:
                MovieRepository(session).set_groups(
                    movie, assign_groups(state, movie.genres, vector)
                )
        session.commit()
        _committed(state, movie_id, all_groups(movie))
        if vector is not None and "genres" in fields:
            state.centroids.remove(old_groups, vector)
            state.centroids.add(labelled_groups(movie), vector)
        return movie  # as committed (expire_on_commit=False): no second read


def delete_movie(state: AppState, session: Session, movie_id: int) -> None:
    with state.write_lock:
        movie = get_movie(session, movie_id)
        groups = labelled_groups(movie)
        vector = from_bytes(movie.vector.vector) if movie.vector else None
        repo = MovieRepository(session)
        repo.delete(movie)
        repo.log_change(movie_id, "delete")
        session.commit()
        _committed(state, movie_id, [])
        failpoint("after_commit_before_index")
        state.index.remove([movie_id])
        if vector is not None:
            state.centroids.remove(groups, vector)
        _count_change(state)


def similar_movies(
    state: AppState,
    session: Session,
    movie_id: int,
    *,
    k: int,
    exclude: set[int],
    genre_group: int | None,
) -> tuple[CachedCard, list[tuple[CachedCard, float, dict]]]:
    """The query vector comes from the index (updated before any write is acknowledged) and the
    cards from memory, so a warm answer costs the search alone; cold cards cost one read."""
    vector = state.index.vector(movie_id)
    if vector is None:
        raise MovieNotFound(f"no movie with id {movie_id}")
    allowed = None
    if genre_group is not None:
        group = genre_group
        allowed = state.groups.ids(group, lambda: MovieRepository(session).ids_in_group(group))
    hits = state.index.search(vector, k, exclude=exclude | {movie_id}, allowed=allowed)
    cards = load_cards(state, [movie_id, *(i for i, _ in hits)])
    query = cards.get(movie_id)
    if query is None:  # deleted since the search
        raise MovieNotFound(f"no movie with id {movie_id}")
    found = [(cards[i], score) for i, score in hits if i in cards]  # deleted since: dropped
    if not found:
        return query, []
    query_groups = query.group_ids
    results = []
    for entry, score in found:
        # Unit vectors: cosines. One dot per card, not a product of stacked matrices: that copied
        # every card's features (270 KB for 20 results with production encoders) and woke the
        # BLAS threads for a product too small to share.
        why = explain(
            query_groups=query_groups,
            result_groups=entry.group_ids,
            text_sim=float(entry.text @ query.text),
            image_sim=float(entry.image @ query.image),
            calibration=state.calibration,
        )
        results.append((entry, float(score), why))
    return query, results


def load_cards(state: AppState, ids: list[int]) -> dict[int, CachedCard]:
    """Cards from the in-memory cache; the missing ones in one database read, then cached.

    The read takes its own connection and gives it back here, in the handler's thread: left in
    the request's session, its transaction would end in the session's teardown on the event
    loop, which hands a rollback to the threadpool (one more thread hop, 0.2 ms, on every first
    visit; docs/PERFORMANCE.md section 1)."""
    cards, missing = state.cards.get_many(ids)
    if missing:
        generation = state.cards.generation()  # before the read: see CardCache
        with state.engine.connect() as connection:
            read = read_cards(connection, missing)
        fresh = {i: CachedCard.from_card(card, movie_read(card)) for i, card in read.items()}
        state.cards.put_many(fresh, generation)
        cards.update(fresh)
    return cards
