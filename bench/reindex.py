"""Reindex: movies per second recomputing every vector from stored features, against the bare
fusion forward on the same features in memory, measured in one run.

    .venv/bin/python -m bench.reindex [--movies 20000] [--preset small]

A SQLite catalogue of N movies with stored raw features of the dev encoders' sizes (MiniLM 384 +
EfficientNet-Lite0 1280; needs ../shared), then `reindex` (what `movierec reindex` and a
checkpoint change at start-up run: read features, fuse, write vectors, rebuild the index) with a
fusion checkpoint of the given preset, against that checkpoint's bare forward in batches of 2,000.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=20_000)
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tests.helpers import LITE0, MINILM

    if not MINILM.is_dir():
        sys.exit(f"needs the offline models at {MINILM.parent}")
    from app.config import Settings
    from app.lifespan import build_state
    from app.search.embedder import Embedder
    from app.search.sync import reindex
    from bench.similar import build_catalogue
    from model.checkpoint import save_checkpoint
    from model.config import fusion_preset
    from model.embedder import EmbedderSpec, MovieEmbedder

    models = {
        "text_model": str(MINILM),
        "image_model": "tf_efficientnet_lite0",
        "image_weights": str(LITE0 / "model.safetensors"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url, *_ = build_catalogue(args.movies, work, models)
        settings = Settings(
            _env_file=None, data_dir=work / f"n{args.movies}", database_url=url, device="cpu",
            **models,
        )  # fmt: skip
        state = build_state(settings)  # vectors already match the fallback: nothing to redo
        text_dim, image_dim = state.embedder.text_encoder.dim, state.embedder.image_encoder.dim
        torch.manual_seed(0)
        net = MovieEmbedder(
            EmbedderSpec(fusion_preset(args.preset, text_dim=text_dim, image_dim=image_dim))
        )
        ckpt = save_checkpoint(work / "ckpt", net)
        state.embedder = Embedder(
            state.embedder.text_encoder,
            state.embedder.image_encoder,
            settings.model_copy(update={"fusion_checkpoint": ckpt}),
        )

        t = time.perf_counter()
        n = reindex(state)
        reindex_s = time.perf_counter() - t

        rng = np.random.default_rng(1)  # the same sizes and batch as reindex, all in memory
        text = rng.normal(size=(n, text_dim)).astype(np.float32)
        image = rng.random((n, image_dim)).astype(np.float32)
        t = time.perf_counter()
        for s in range(0, n, 2000):
            state.embedder.fuse(text[s : s + 2000], image[s : s + 2000])
        bare_s = time.perf_counter() - t
        state.batcher.close()
        state.engine.dispose()
    row = {
        "movies": n,
        "preset": args.preset,
        "reindex_movies_per_s": n / reindex_s,
        "bare_fusion_movies_per_s": n / bare_s,
        "ratio": bare_s / reindex_s,
        "threads": torch.get_num_threads(),
    }
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    print("wrote", save(f"reindex_{args.preset}", row))


if __name__ == "__main__":
    main()
