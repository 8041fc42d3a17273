"""Everything heavy, built once in the lifespan and shared by requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.movies.card_cache import CardCache
from app.movies.clusters import GenreCentroids
from app.movies.explain import ModalityCalibration
from app.movies.group_members import GroupMembers
from app.search.batcher import EmbedBatcher
from app.search.embedder import Embedder
from app.search.index import VectorIndex
from model.genres import GenreMapper


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    embedder: Embedder
    index: VectorIndex
    centroids: GenreCentroids
    calibration: ModalityCalibration
    mapper: GenreMapper
    batcher: EmbedBatcher  # the only path from a POST to the encoders
    cards: CardCache  # the similar path's in-memory cards, invalidated by every write
    groups: GroupMembers  # genre groups' ids for filtered answers, valid while the cards' are
    # One thread, so snapshots reach the disk in the order they were captured; it runs at a
    # lower priority than requests (app/thread_priority).
    maintenance: ThreadPoolExecutor
    # Commit + index update happen under this lock so the index applies changes in commit order.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    # a write slower than this logs where its time went (settings.slow_write_limit)
    slow_write_seconds: float = 1.0
    changes_since_snapshot: int = 0
    # A captured snapshot waits for or runs on the maintenance thread: at most one at a time, so
    # a write burst on a large catalogue cannot queue one copy of the vectors per SNAPSHOT_EVERY.
    snapshot_in_flight: bool = False

    @property
    def model_version(self) -> str:
        return self.embedder.model_version
