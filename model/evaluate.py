"""Compare methods on the test split, like the thesis' Figure 31, and write markdown + JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import load_checkpoint
from model.config import FusionConfig
from model.data import Dataset, Split, relevance, restrict, split_ids
from model.embedder import EmbedderSpec, MovieEmbedder
from model.features import FeatureCache
from model.fusion import FALLBACK_SEED, RandomProjection
from model.metrics import KS, retrieval_metrics
from model.projection import fit_pca_projection, unit_concat
from model.train import FeatureTable, embed_table


def concat_cosine_vectors(text: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The training-free baseline a user tries first: unit text ; unit image, then unit overall."""
    x = unit_concat(text, image)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _standardised_concat(cache: FeatureCache, train_ids: list[int], ids: list[int]) -> np.ndarray:
    tr = np.concatenate([cache.text[cache.rows(train_ids)], cache.image[cache.rows(train_ids)]], 1)
    x = np.concatenate([cache.text[cache.rows(ids)], cache.image[cache.rows(ids)]], 1)
    return (x - tr.mean(0)) / np.maximum(tr.std(0), 1e-6)


def pca_2d_scores(cache: FeatureCache, train_ids: list[int], ids: list[int]) -> np.ndarray:
    """Rank by -Euclidean distance on a 2-D PCA fitted on the train split (the thesis' K-NN, K=11,
    becomes a full ranking so Recall@20 is defined)."""
    tr = _standardised_concat(cache, train_ids, train_ids)
    _, _, vt = np.linalg.svd(tr - tr.mean(0), full_matrices=False)
    pts = _standardised_concat(cache, train_ids, ids) @ vt[:2].T  # (N, 2)
    d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2)
    return -d


def untrained_vectors(cache: FeatureCache, train_ids: list[int], ids: list[int], seed: int = 0):
    """The thesis' "untrained: concat -> random FC 256" on standardised features, as measured
    since session 1 (with L2-normalised inputs it scores higher: docs/REPRODUCTION.md item 6)."""
    torch.manual_seed(seed)
    spec = EmbedderSpec(
        fusion=FusionConfig(text_dim=cache.text.shape[1], image_dim=cache.image.shape[1]),
        head="linear",
        input_norm="standardize",
    )
    model = MovieEmbedder(spec)
    tr = FeatureTable(cache, train_ids, torch.device("cpu"))
    model.fit_standardizer(tr.text, tr.image)
    return embed_table(model, FeatureTable(cache, ids, torch.device("cpu")))


PCA_DIM = 256
PCA_METHOD = f"PCA-{PCA_DIM} of concat features (label-free, fitted on train)"
FALLBACK_METHOD = "service default without a checkpoint: fixed random projection to 256"


def fallback_vectors(text: np.ndarray, image: np.ndarray, seed: int = FALLBACK_SEED) -> np.ndarray:
    """What the service serves with no MOVIEREC_FUSION_CHECKPOINT."""
    projection = RandomProjection(text.shape[1], image.shape[1], seed=seed)
    with torch.no_grad():
        return projection(torch.from_numpy(text).float(), torch.from_numpy(image).float()).numpy()


def pca_vectors(cache: FeatureCache, train_ids: list[int], ids: list[int]) -> np.ndarray:
    """`movierec fit-projection --split train` applied to `ids`: what a label-free checkpoint
    fitted on the training movies gives unseen ones."""
    fit_rows = cache.rows(train_ids)
    model = fit_pca_projection(cache.text[fit_rows], cache.image[fit_rows], PCA_DIM).model
    return embed_table(model, FeatureTable(cache, ids, torch.device("cpu")))


def evaluate_methods(
    cache: FeatureCache,
    dataset: Dataset,
    *,
    checkpoints: dict[str, str] | None = None,
    split: Split | None = None,
    seed: int = 0,
    related_only: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics per method over the test split as catalogue (query excluded)."""
    split = split or split_ids(dataset.ids, seed=seed)
    ids = split.test
    rel = restrict(relevance(dataset, related_only=related_only), ids)
    results: dict[str, dict[str, float]] = {}
    if not cache.text_is_tokens:
        text, image = cache.text[cache.rows(ids)], cache.image[cache.rows(ids)]
        results["cosine on concat features (training-free)"] = retrieval_metrics(
            concat_cosine_vectors(text, image), ids, rel
        )
        results["untrained: concat -> random FC 256"] = retrieval_metrics(
            untrained_vectors(cache, split.train, ids, seed), ids, rel
        )
        results[FALLBACK_METHOD] = retrieval_metrics(fallback_vectors(text, image), ids, rel)
        if len(split.train) > PCA_DIM:  # a 256-d PCA needs more movies than dimensions
            pca = pca_vectors(cache, split.train, ids)
            results[PCA_METHOD] = retrieval_metrics(pca, ids, rel)
        results["K-NN on 2-D PCA"] = retrieval_metrics(
            None,
            ids,
            rel,
            scores=pca_2d_scores(cache, split.train, ids),
        )
    for name, directory in (checkpoints or {}).items():
        model, _ = load_checkpoint(directory)
        results[name] = retrieval_metrics(
            embed_table(model, FeatureTable(cache, ids, torch.device("cpu"))), ids, rel
        )
    return results


def to_markdown(results: dict[str, dict[str, float]], ks=KS) -> str:
    cols = [f"thesis_recall@{k}" for k in ks] + [f"recall@{k}" for k in ks]
    cols += [f"ndcg@{ks[-1]}", "mrr"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * m[c]:.1f}" for c in cols) + " |")
    queries = {int(m["queries"]) for m in results.values()}
    lines.append("")
    lines.append(
        f"Values in %. Queries with at least one relevant movie in the catalogue: {queries}."
    )
    return "\n".join(lines)


def write_report(results: dict[str, dict[str, float]], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md, js = out.with_suffix(".md"), out.with_suffix(".json")
    md.write_text(to_markdown(results) + "\n", encoding="utf-8")
    js.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return md, js
