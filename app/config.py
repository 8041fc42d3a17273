"""Service settings (pydantic-settings): environment variables MOVIEREC_*, or a .env file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.allocator import MAX_TRIM_THRESHOLD_MIB
from model.config import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, Precision

MiB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", env_file=".env", extra="ignore")

    # Storage
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MOVIEREC_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite file in data_dir",
    )
    data_dir: Path = Path("data")  # SQLite file and FAISS snapshot
    auto_migrate: bool = True  # run Alembic migrations at start-up

    # Models
    text_model: str = DEFAULT_TEXT_MODEL  # HF id or local directory
    text_pooling: Literal["cls", "mean"] | None = None  # None: cls for KoBERT, mean otherwise
    text_max_length: int = 512
    image_model: str = DEFAULT_IMAGE_MODEL  # timm name
    image_weights: str | None = None  # local weights file for the image model
    image_size: int | None = None  # smaller input for CPU laptops (e.g. 300 for b7); None: model's
    image_pretrained: bool = True  # False only for tests with random-init towers
    fusion_checkpoint: Path | None = None  # directory from `movierec train`; None: fallback
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    # CUDA only: the image encoder replays CUDA graphs (captured at start-up, a few seconds and
    # the memory of one batch) instead of launching its kernels from Python for every batch.
    # Off until bench/gpu.sh has measured it (docs/PERFORMANCE.md, "Not measured yet")
    cuda_graphs: bool = False
    # what the encoders compute in: auto is bf16 on CUDA and on CPUs with bf16 in hardware (AMX:
    # Intel Xeon since Sapphire Rapids; AVX512-BF16: AMD since Zen 4), fp32 elsewhere, where
    # bf16 is emulated and slower (model.device.encoder_dtype)
    encoder_precision: Precision = "auto"
    genre_map_file: Path | None = None  # JSON {"genre name": group id}

    # Index
    index_kind: Literal["flat", "hnsw"] = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    # flat: keep the vectors in half precision too (512 bytes a movie at 256-d) and scan that
    # copy first on catalogues of 32,768 movies or more; answers stay exact (app/search/half_scan)
    flat_half_scan: bool = True
    snapshot_every: int = 200  # write a snapshot after this many changes (and at shutdown)

    # Access: "write:<sha256 hex>,read:<sha256 hex>"; empty = open (local use)
    api_keys: str = ""

    # Limits
    max_body_bytes: int = 32 * MiB
    max_images: int = 16  # per movie
    max_image_bytes: int = 10 * MiB
    max_image_pixels: int = 40_000_000  # width * height, checked from the header before decoding
    max_title_chars: int = 500
    max_plot_chars: int = 20_000
    max_pending_ingests: int = 32  # movies queued for the encoders; beyond, POST waits, then 429
    ingest_wait_seconds: float = 5.0  # a waiting ingest gives up with 429 after this
    # a write slower than this logs where its time went; None: 4x what the encoders take for a
    # warm movie of two images at start-up, at least 1 s (KoBERT and b7 at 600 px took 1.3 s for
    # one on 2 CPU cores, so 5.2 s there; a GPU takes tens of milliseconds)
    slow_write_seconds: float | None = Field(default=None, gt=0)
    # images per encoder call when concurrent ingests are batched; None: 32 on a GPU, 4 on a CPU,
    # where a bigger batch costs more per image (docs/PERFORMANCE.md, "Encoder cost by batch size")
    ingest_batch_images: int | None = Field(default=None, ge=1)
    ingest_batch_wait_ms: float = 0.0  # extra wait for more movies before a batch (GPU, bursts)
    # CPU encoders only: a second embedding worker takes waiting movies while the first is busy,
    # both on half the cores (8 clients 1.1-1.65x the movies/s on 2 cores; unmeasured on many
    # cores, where `python -m bench.ab --b MOVIEREC_SPARE_EMBED_WORKER=false` tells)
    spare_embed_worker: bool = True
    card_cache_size: int = 20_000  # movies whose cards the similar path keeps in memory; 0: off
    # glibc only: freed heap memory each malloc arena keeps for reuse instead of trimming it; the
    # embedding worker otherwise re-faults its activations' pages on every forward (app/allocator)
    malloc_keep_freed_mib: int = Field(default=256, ge=0, le=MAX_TRIM_THRESHOLD_MIB)
    # glibc only: blocks over 32 MiB (b7 at 600 px's activations) stay in the heap too, with one
    # malloc arena for every thread (app/allocator); None: on for CPU encoders whose image forward
    # writes tensors bigger than a thread's 64 MiB heap (b7 at 600 px; at 300 px in fp32 only;
    # not Lite0)
    malloc_keep_large_blocks: bool | None = None
    # start-up's objects (the models) out of full garbage collections, which otherwise stall
    # every request for 0.3-0.4 s each (app/gc_freeze)
    gc_freeze: bool = True
    # nice value added to the maintenance thread (snapshots, compaction, calibration), so on a
    # busy CPU requests and the encoders get the cores first (app/thread_priority); 0: none
    maintenance_nice: int = Field(default=10, ge=0, le=19)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'movierec.db').resolve()}"

    def batch_images(self, device_type: str) -> int:
        """Images per encoder call on this device: the setting, or the measured sweet spot."""
        if self.ingest_batch_images is not None:
            return self.ingest_batch_images
        return 32 if device_type == "cuda" else 4

    def slow_write_limit(self, warm_movie_seconds: float) -> float:
        """Seconds past which a write logs where its time went: the setting, or 4x the encoders'
        time for a warm movie of two images (so only a write well off its encoders' pace logs)."""
        if self.slow_write_seconds is not None:
            return self.slow_write_seconds
        return max(1.0, 4 * warm_movie_seconds)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"
