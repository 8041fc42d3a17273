"""fp32 against bf16 encoders on this device: time per movie, and how far the features move.

    .venv/bin/python -m bench.precision                          # dev encoders, needs ../shared
    .venv/bin/python -m bench.precision --encoders production    # KoBERT/b7 shapes, random init
    .venv/bin/python -m bench.precision --quality-movies 1000    # quality over the whole dev set

Both precisions are loaded side by side (MOVIEREC_ENCODER_PRECISION=fp32 and bf16, as the
service builds them) and timed in alternating rounds on the same movies, one movie per call as
the embedding worker runs on a CPU: its plot through the text encoder, its first 3 posters
through the image encoder. Speed-ups are fp32 time / bf16 time within a round.

Quality (dev encoders only: random-init weights give meaningless features), over the first
`--quality-movies` movies of the dev set: each tower's relative change (|bf16 - fp32| / |fp32|),
how many of each movie's 20 nearest neighbours stay the same by the service's fallback vectors
and by the cosine on [unit text ; unit image], and those two methods' thesis Recall@20 against the
dataset's similar lists, computed both ways.
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
from tqdm import tqdm

from bench.common import pct, relative_change, save, sync
from bench.ingest import encoder_settings, settings_from_env

PRECISIONS = ("fp32", "bf16")
POSTERS = 3
NEIGHBOURS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", choices=("dev", "production"), default="dev")
    parser.add_argument("--image-size", type=int, help="default: the model's; 300 for b7 on a CPU")
    parser.add_argument("--dataset", type=Path, default=None, help="default: ../shared's dev set")
    parser.add_argument("--movies", type=int, default=24, help="movies timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality-movies", type=int, default=300, help="0: no quality check")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.search.embedder import Embedder
    from model.data import load_dataset
    from tests.helpers import DATASET

    dataset = load_dataset(args.dataset or DATASET)  # plots and posters, for timing too
    movies = [m for m in dataset.movies if m.image_paths]
    if not movies:
        sys.exit(f"needs a dataset with posters at {args.dataset or DATASET}")
    image_size = args.image_size
    if image_size is None and args.encoders == "production" and args.device == "cpu":
        image_size = 300  # b7's 600 px takes seconds per movie on a laptop-sized CPU
    results: dict = {"device": args.device, "encoders": args.encoders, "image_size": image_size}
    with tempfile.TemporaryDirectory() as tmp:
        env = encoder_settings(args.encoders, Path(tmp)) | {"MOVIEREC_DEVICE": args.device}
        if image_size:
            env["MOVIEREC_IMAGE_SIZE"] = str(image_size)
        embedders = {
            p: Embedder.from_settings(
                settings_from_env(env | {"MOVIEREC_ENCODER_PRECISION": p}, Path(tmp) / "data")
            )
            for p in PRECISIONS
        }
        results["resolved"] = {p: e.precision for p, e in embedders.items()}
        results["speed"] = speed(embedders, movies[: args.movies], args.rounds)
        if args.quality_movies and args.encoders == "dev":
            results["quality"] = quality(embedders, dataset, movies[: args.quality_movies])
    for key, value in results.items():
        print(key, value)
    name = f"precision-{args.device.replace(':', '')}-{args.encoders}"
    print("wrote", save(name, results))


def _movie_inputs(emb, movies) -> list[tuple[str, torch.Tensor]]:
    from model.features import load_images

    return [
        (m.plot or m.title, emb.prepare(load_images(m.image_paths, POSTERS)))
        for m in tqdm(movies, desc="decode", leave=False, disable=None)
    ]


def _time_movies(emb, inputs) -> dict[str, float]:
    """Median ms per movie of each tower, one movie per call."""
    text, image = [], []
    for plot, pixels in inputs:
        start = time.perf_counter()
        emb.text_encoder.encode([plot])
        sync(emb.device)
        middle = time.perf_counter()
        emb.image_encoder.encode_tensors(pixels)
        sync(emb.device)
        text.append(middle - start)
        image.append(time.perf_counter() - middle)
    both = np.add(text, image)
    return {
        "text_ms": 1e3 * pct(np.array(text), 50),
        "image_ms": 1e3 * pct(np.array(image), 50),
        "movie_ms": 1e3 * pct(both, 50),
    }


def speed(embedders: dict, movies, rounds: int) -> dict:
    inputs = _movie_inputs(embedders["fp32"], movies)  # both precisions prepare alike (uint8)
    for emb in embedders.values():  # first forwards (oneDNN kernel set-up) off the clock
        _time_movies(emb, inputs[:2])
    per_round = []
    for r in range(rounds):
        order = PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]
        times = {p: _time_movies(embedders[p], inputs) for p in order}
        per_round.append(
            times
            | {
                f"{tower}_speedup": times["fp32"][f"{tower}_ms"] / times["bf16"][f"{tower}_ms"]
                for tower in ("text", "image", "movie")
            }
        )
        ms = ", ".join(f"{p} {times[p]['movie_ms']:.1f} ms" for p in PRECISIONS)
        print(f"round {r}: per movie {ms}, bf16 {per_round[-1]['movie_speedup']:.2f}x faster")
    summary = {
        key: float(np.median([row[key] for row in per_round]))
        for key in ("text_speedup", "image_speedup", "movie_speedup")
    }
    return {"movies": len(movies), "rounds": per_round, "median": summary}


def _features(emb, movies) -> tuple[np.ndarray, np.ndarray]:
    from model.features import load_images

    text = emb.text_encoder.encode([m.plot or m.title for m in movies])
    image = np.stack(
        [
            emb.image_encoder.encode_movies([load_images(m.image_paths, POSTERS)])[0]
            for m in tqdm(movies, desc=f"features {emb.precision}", leave=False, disable=None)
        ]
    )
    return text, image


def _neighbours(vectors: np.ndarray) -> np.ndarray:
    from model.metrics import rank_catalogue

    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return rank_catalogue(scores)[:, :NEIGHBOURS]


def _overlap(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    pairs = zip(_neighbours(a), _neighbours(b), strict=True)
    shares = np.array([len(set(x) & set(y)) / NEIGHBOURS for x, y in pairs])
    return {"mean": float(shares.mean()), "min": float(shares.min())}


def quality(embedders: dict, dataset, movies) -> dict:
    from model.data import relevance
    from model.evaluate import concat_cosine_vectors, fallback_vectors
    from model.metrics import retrieval_metrics

    ids = [m.id for m in movies]
    feats = {p: _features(embedders[p], movies) for p in PRECISIONS}
    methods = {"fallback": fallback_vectors, "concat cosine": concat_cosine_vectors}
    vectors = {(name, p): make(*feats[p]) for name, make in methods.items() for p in PRECISIONS}
    relevant = relevance(dataset)
    out: dict = {
        "movies": len(movies),
        "text_change": relative_change(feats["fp32"][0], feats["bf16"][0]),
        "image_change": relative_change(feats["fp32"][1], feats["bf16"][1]),
    }
    for name in methods:
        out[name] = {
            "top20_overlap": _overlap(vectors[name, "fp32"], vectors[name, "bf16"]),
            **{
                f"thesis_recall@20_{p}": retrieval_metrics(vectors[name, p], ids, relevant)[
                    "thesis_recall@20"
                ]
                for p in PRECISIONS
            },
        }
    return out


if __name__ == "__main__":
    main()
