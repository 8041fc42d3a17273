"""Start-up and shutdown: database, models, index, centroids; a final snapshot on the way out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

import numpy as np
from fastapi import FastAPI
from PIL import Image

from app.allocator import keep_freed_memory
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.gc_freeze import SlowCollectionLog, freeze_startup_objects, unfreeze
from app.migrations import upgrade_database
from app.movies.card_cache import CardCache
from app.movies.clusters import GenreCentroids
from app.movies.explain import ModalityCalibration
from app.movies.group_members import GroupMembers
from app.movies.repository import MovieRepository
from app.movies.service import refresh_calibration
from app.search.batcher import EmbedBatcher
from app.search.embedder import Embedder
from app.search.index import VectorIndex
from app.search.sync import open_index, reindex, snapshot, stale_vector_count
from app.state import AppState
from app.thread_priority import lower_thread_priority
from model.genres import GenreMapper

log = logging.getLogger("movierec")
T = TypeVar("T")


def build_state(settings: Settings, embedder: Embedder | None = None) -> AppState:
    url = settings.resolved_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        upgrade_database(url)
    engine = make_engine(url)
    embedder = embedder or Embedder.from_settings(settings)
    mapper = (
        GenreMapper.from_file(settings.genre_map_file) if settings.genre_map_file else GenreMapper()
    )
    cards = CardCache(settings.card_cache_size)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        embedder=embedder,
        index=VectorIndex(
            embedder.out_dim,
            settings.index_kind,
            settings.hnsw_m,
            settings.hnsw_ef_search,
            half_scan=settings.flat_half_scan,
        ),
        centroids=GenreCentroids(embedder.out_dim),
        calibration=ModalityCalibration.from_features([]),
        mapper=mapper,
        cards=cards,
        groups=GroupMembers(cards),
        maintenance=ThreadPoolExecutor(
            1,
            thread_name_prefix="maintenance",
            initializer=lower_thread_priority,
            initargs=(settings.maintenance_nice,),
        ),
        batcher=EmbedBatcher(
            embedder,
            max_images=settings.batch_images(embedder.device.type),
            max_wait=settings.ingest_batch_wait_ms / 1000,
            max_pending=settings.max_pending_ingests,
            # decode beside the encoders only where they run on other hardware than the decode
            overlap_prepare=embedder.device.type != "cpu",
            # on a CPU, two forwards on half the cores each while movies wait
            spare_worker=settings.spare_embed_worker and embedder.device.type == "cpu",
        ),
    )
    stale = stale_vector_count(state)
    if stale:
        log.warning(
            "%d stored vectors were made by another model: reindexing to %s",
            stale,
            state.model_version,
        )
        reindex(state, progress=False)
    open_index(state)
    load_centroids(state)
    refresh_calibration(state)
    return state


def warm_up_encoders(state: AppState) -> None:
    """One blank movie of two images through the resize pool and the embedding worker, so the
    first POST pays no first-forward cost (`EmbedBatcher.warm_up`)."""
    size = state.embedder.image_encoder.input_size
    blank = Image.new("RGB", (size, size))
    pixels = state.embedder.prepare_from([blank, blank], lambda image: image)
    seconds = state.batcher.warm_up(pixels)
    log.info("encoders warmed up in %.0f ms", 1e3 * seconds)


def load_centroids(state: AppState) -> None:
    with state.sessions() as session:
        repo = MovieRepository(session)
        memberships = repo.labelled_groups()
        vectors = repo.vectors(sorted({m for m, _ in memberships})) if memberships else {}
    centroids = GenreCentroids(state.embedder.out_dim)
    for movie_id, group in memberships:
        if movie_id in vectors:
            centroids.add([group], vectors[movie_id].astype(np.float64))
    state.centroids = centroids


async def in_a_thread_of_its_own(fn: Callable[[], T]) -> T:
    """Run `fn` off the event loop in a thread that ends with it. Torch keeps an OpenMP team for
    every thread that ever ran a parallel op; a pooled thread that loaded the models would keep
    its team for good, and with a second team alive the embedding worker's encoders got about
    1.4 of 2 CPU cores instead of 2 (docs/PERFORMANCE.md section 3)."""
    with ThreadPoolExecutor(1, thread_name_prefix="startup") as pool:
        return await asyncio.wrap_future(pool.submit(fn))


def make_lifespan(
    settings: Settings, embedder_factory: Callable[[Settings], Embedder] | None = None
):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def start() -> AppState:  # every model load and first forward in that one thread
            embedder = embedder_factory(settings) if embedder_factory else None
            state = build_state(settings, embedder)
            warm_up_encoders(state)
            return state

        keep_freed_memory(settings.malloc_keep_freed_mib)  # before the worker's first forward
        state = await in_a_thread_of_its_own(start)
        app.state.movierec = state
        if settings.gc_freeze:
            freeze_startup_objects()  # full collections would walk every model object (280 ms)
        slow_collections = SlowCollectionLog()
        slow_collections.install()
        if app.state.keyring.open:
            log.warning(
                "NO API KEYS CONFIGURED: the API is open to anyone who can reach it. "
                "Set MOVIEREC_API_KEYS (movierec api-key) before exposing it."
            )
        log.info(
            "movierec ready: model %s, %d movies indexed", state.model_version, len(state.index)
        )
        try:
            yield
        finally:
            state.batcher.close()
            state.index.stop_compactions()  # a rebuild of a large graph takes minutes
            state.maintenance.shutdown(wait=True)  # queued snapshots land before the last one
            with state.write_lock:
                snapshot(state)
            state.engine.dispose()
            slow_collections.remove()
            if settings.gc_freeze:
                unfreeze()

    return lifespan
