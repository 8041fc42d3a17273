"""Everything heavy, built once in the lifespan and shared by requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.movies.clusters import GenreCentroids
from app.movies.explain import ModalityCalibration
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
    ingest_slots: threading.BoundedSemaphore  # at most MAX_CONCURRENT_INGESTS embed at once
    # Commit + index update happen under this lock so the index applies changes in commit order.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    changes_since_snapshot: int = 0

    @property
    def model_version(self) -> str:
        return self.embedder.model_version
