"""`movierec features | train | fit-projection | evaluate | plot`: the ML engineer's commands.

Heavy imports happen inside each command so `movierec --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import get_args

from model.config import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_TEXT_MODEL,
    FUSION_PRESETS,
    SAMPLINGS,
    Precision,
    TrainConfig,
)
from model.embedder import DEFAULT_INPUT_NORM, INPUT_NORMS
from model.losses import LOSSES


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="run the frozen encoders once over a dataset folder")
    p.add_argument(
        "dataset", type=Path, help="dataset folder (movies.csv, plots.csv, images/<id>/)"
    )
    p.add_argument("--out", type=Path, required=True, help="feature cache file (.safetensors)")
    p.add_argument(
        "--text-model",
        default=DEFAULT_TEXT_MODEL,
        help="HF id or local dir; 'rnn'/'lstm' store token ids; 'word2vec:FILE' for gensim vectors",
    )
    p.add_argument("--image-model", default=DEFAULT_IMAGE_MODEL, help="timm name or local-dir:DIR")
    p.add_argument("--image-weights", help="local weights file for the image model")
    p.add_argument("--image-size", type=int, help="override the image input size (CPU fallback)")
    p.add_argument("--max-images", type=int, help="use at most this many images per movie")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        choices=get_args(Precision),
        default="auto",
        help="what the encoders compute in; auto: bf16 on CUDA and on CPUs with bf16 in hardware "
        "(AMX, AVX512-BF16), else fp32 (match the service's MOVIEREC_ENCODER_PRECISION)",
    )
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="train the text-image network on a feature cache")
    p.add_argument("dataset", type=Path)
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--preset", choices=FUSION_PRESETS, default="paper")
    p.add_argument(
        "--head",
        choices=("conv", "linear"),
        default="conv",
        help="conv: Table 6 network; linear: concat -> FC 256 (VSE++ style)",
    )
    d = TrainConfig()
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--distance", choices=("euclidean", "cosine"), default=d.distance)
    p.add_argument("--margin", type=float, default=d.margin)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"default: {d.lr} (Table 8) at batch {d.batch_size}, scaled by "
        "sqrt(batch / 512) for other batch sizes",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping, in epochs")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-clock budget; training stops after the epoch that crosses it and saves the "
        "best epoch so far (Ctrl-C does the same)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="also the split seed")
    p.add_argument(
        "--related-only",
        action="store_true",
        help="similar = related (drop the thesis' same-genre-group rule)",
    )
    p.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        default=d.sampling,
        help="pair: a triplet per similar pair each epoch (the thesis' training pairs); anchor: "
        "a triplet per movie with a random similar movie (fewer, more uniform steps)",
    )
    p.add_argument(
        "--input-norm",
        choices=INPUT_NORMS,
        default=DEFAULT_INPUT_NORM,
        help="standardize: train-set mean/std per feature; l2: each modality L2-normalised "
        "(the cosine baseline's geometry); none: raw features (the thesis)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "fit-projection",
        help="label-free checkpoint: PCA of the catalogue's features (no similarity labels)",
        description="Fit the top principal components of the cached [unit text ; unit image] "
        "features and write them as a fusion checkpoint (concat -> linear 256 -> L2). It keeps "
        "the training-free cosine's ranking far better than the service's default random "
        "projection (docs/REPRODUCTION.md item 9). Serve it with MOVIEREC_FUSION_CHECKPOINT=DIR "
        "and `movierec reindex`.",
    )
    p.add_argument("dataset", type=Path)
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument(
        "--split",
        choices=("all", "train"),
        default="all",
        help="all: every movie in the cache (the catalogue; no labels are used); train: only "
        "the seeded train split, to compare with trained models on the test split",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (with --split train)")
    p.set_defaults(func=cmd_fit_projection)

    p = sub.add_parser("evaluate", help="Recall@k / nDCG / MRR of baselines and checkpoints")
    p.add_argument("dataset", type=Path)
    p.add_argument("--features", type=Path, required=True)
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a trained checkpoint to compare (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("eval/results"),
        help="report path stem: writes .md and .json",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (same as training)")
    p.add_argument("--related-only", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="2-D PCA of test embeddings coloured by genre group (PNG)")
    p.add_argument("dataset", type=Path)
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, help="omit to plot the training-free baseline")
    p.add_argument("--out", type=Path, default=Path("eval/genre_pca.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all", action="store_true", help="plot every movie, not only the test split")
    p.set_defaults(func=cmd_plot)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_features(args: argparse.Namespace) -> int:
    from model.data import load_dataset
    from model.features import compute_features

    dataset = load_dataset(args.dataset)
    cache = compute_features(
        dataset,
        text_model=args.text_model,
        image_model=args.image_model,
        image_weights=args.image_weights,
        image_size=args.image_size,
        max_images=args.max_images,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
    )
    cache.save(args.out)
    print(
        f"wrote {args.out}: {len(cache.ids)} movies, text {cache.text.shape}, "
        f"image {cache.image.shape}, {cache.meta['movies_without_images']} without images"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from model.config import scaled_lr
    from model.data import load_dataset
    from model.features import FeatureCache
    from model.train import train

    lr = args.lr if args.lr is not None else scaled_lr(args.batch_size)
    cfg = TrainConfig(
        loss=args.loss,
        distance=args.distance,
        margin=args.margin,
        lr=lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        max_minutes=args.max_minutes,
        seed=args.seed,
        related_only=args.related_only,
        sampling=args.sampling,
    )
    result = train(
        FeatureCache.load(args.features),
        load_dataset(args.dataset),
        out_dir=args.out,
        cfg=cfg,
        preset=args.preset,
        head=args.head,
        device=args.device,
        input_norm=args.input_norm,
    )
    print(json.dumps({"checkpoint": str(args.out), **result.__dict__}, indent=2))
    return 0


def cmd_fit_projection(args: argparse.Namespace) -> int:
    from model.checkpoint import provenance, save_checkpoint
    from model.data import load_dataset, split_ids
    from model.features import FeatureCache
    from model.projection import fit_pca_projection

    cache = FeatureCache.load(args.features)
    if cache.text_is_tokens:
        return _fail("the cache holds token ids (RNN/LSTM text); fit-projection needs features")
    dataset = load_dataset(args.dataset)
    if args.split == "all":
        ids = cache.ids.tolist()
    else:
        ids = split_ids(dataset.ids, seed=args.seed).train
    rows = cache.rows(ids)
    try:
        fitted = fit_pca_projection(cache.text[rows], cache.image[rows])
    except ValueError as exc:
        return _fail(str(exc))
    extra = {
        **provenance(cache, dataset),
        "method": "pca",
        "fit": {
            "split": args.split,
            "seed": args.seed,
            "movies": fitted.movies,
            "explained_variance": fitted.explained_variance,
        },
    }
    save_checkpoint(args.out, fitted.model, extra=extra)
    print(
        json.dumps(
            {
                "checkpoint": str(args.out),
                "movies": fitted.movies,
                "explained_variance": round(fitted.explained_variance, 4),
            }
        )
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from model.data import load_dataset
    from model.evaluate import evaluate_methods, to_markdown, write_report
    from model.features import FeatureCache

    checkpoints = {}
    for item in args.checkpoint:
        if "=" not in item:
            return _fail(f"--checkpoint wants NAME=DIR, got {item!r}")
        name, directory = item.split("=", 1)
        checkpoints[name] = directory
    results = evaluate_methods(
        FeatureCache.load(args.features),
        load_dataset(args.dataset),
        checkpoints=checkpoints,
        seed=args.seed,
        related_only=args.related_only,
    )
    print(to_markdown(results))
    md, js = write_report(results, args.out)
    print(f"\nwrote {md} and {js}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from model.checkpoint import load_checkpoint
    from model.data import load_dataset, split_ids
    from model.evaluate import concat_cosine_vectors
    from model.features import FeatureCache
    from model.plot import plot_genre_pca
    from model.train import FeatureTable, embed_table

    dataset = load_dataset(args.dataset)
    cache = FeatureCache.load(args.features)
    ids = dataset.ids if args.all else split_ids(dataset.ids, seed=args.seed).test
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
        vectors = embed_table(model, FeatureTable(cache, ids, torch.device("cpu")))
        title = f"{args.checkpoint.name}: {len(ids)} movies by genre group"
    else:
        rows = cache.rows(ids)
        vectors = concat_cosine_vectors(cache.text[rows], cache.image[rows])
        title = f"training-free concat features: {len(ids)} movies by genre group"
    groups = dataset.by_id()
    path = plot_genre_pca(vectors, [groups[i].groups for i in ids], args.out, title)
    print(f"wrote {path}")
    return 0
