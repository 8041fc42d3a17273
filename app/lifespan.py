"""Start-up and shutdown: database, models, index, centroids; a final snapshot on the way out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

import numpy as np
import torch
from fastapi import FastAPI
from PIL import Image

from app.allocator import THREAD_HEAP, MiB, keep_freed_memory, keep_large_blocks
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
from app.search.embedder import Embedder, image_encoder_config
from app.search.index import VectorIndex
from app.search.sync import open_index, reindex, snapshot, stale_vector_count
from app.state import AppState
from app.thread_priority import lower_thread_priority
from model.activations import largest_activation_bytes
from model.device import encoder_dtype, resolve_device
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
    first POST pays no first-forward cost (`EmbedBatcher.warm_up`); then the same movie warm,
    whose time sets what counts as a slow write (KoBERT and b7 on a CPU take a second a movie)."""
    size = state.embedder.image_encoder.input_size
    blank = Image.new("RGB", (size, size))
    pixels = state.embedder.prepare_from([blank, blank], lambda image: image)
    first = state.batcher.warm_up(pixels)
    warm = state.batcher.warm_up(pixels)
    state.slow_write_seconds = state.settings.slow_write_limit(warm)
    log.info(
        "encoders warmed up in %.0f ms (a warm movie of two images: %.0f ms); writes over %.1f s"
        " log where their time went (MOVIEREC_SLOW_WRITE_SECONDS)",
        1e3 * first,
        1e3 * warm,
        state.slow_write_seconds,
    )


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


def configure_allocator(settings: Settings) -> None:
    """glibc's malloc settings for this process (app/allocator). Process-wide, and an arena is
    fixed when its thread first allocates, so call it before other threads start: the lifespan
    does, and so does an in-process benchmark before its test client starts the event loop's
    thread (large blocks were still unmapped in a worker that got that thread's arena)."""
    keep_freed_memory(settings.malloc_keep_freed_mib)  # before the worker's first forward
    if keeps_large_blocks(settings, resolve_device(settings.device)):
        keep_large_blocks()  # before the start-up thread: no thread has an arena of its own


def keeps_large_blocks(settings: Settings, device: torch.device) -> bool:
    """MOVIEREC_MALLOC_KEEP_LARGE_BLOCKS, or when unset: whether the CPU image encoder writes a
    tensor too big for a thread's malloc heap in a batch (a dry run on the meta device). On 2
    cores that paid 1.40x with b7 at 600 px in bf16 (132 MiB) and cost 0.92x at 300 px (33 MiB)
    and 0.90-1.00x with Lite0 (18 MiB), where no block was unmapped; in fp32 at 300 px (66 MiB,
    kept) it paid 1.02x (docs/PERFORMANCE.md section 3)."""
    if settings.malloc_keep_large_blocks is not None:
        return settings.malloc_keep_large_blocks
    if device.type != "cpu":
        return False  # a GPU's activations live in CUDA's allocator
    config = image_encoder_config(settings, device.type)
    dtype = encoder_dtype(device, settings.encoder_precision)
    try:
        largest = largest_activation_bytes(config, config.batch_size, dtype)
    except Exception as exc:  # a trunk the meta device cannot run: start as before
        log.warning("could not size the image encoder's activations (%s): glibc's defaults", exc)
        return False
    log.info("the image encoder's largest activation: %.0f MiB a batch", largest / MiB)
    return largest > THREAD_HEAP


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

        configure_allocator(settings)
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
