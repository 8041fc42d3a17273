"""A label-free fusion checkpoint: PCA of the catalogue's normalised text + image features.

Without a checkpoint the service projects [unit text ; unit image] to 256-d with a fixed random
matrix, which keeps cosine similarities only roughly. The top 256 principal components of the
same features keep nearly all of what the full cosine ranks on. Centring also removes the
direction every movie shares. No labels are needed, so any catalogue can fit one before it has
similarity judgments (docs/REPRODUCTION.md item 9 has the numbers).

The result is an ordinary checkpoint (`head="linear"`, L2 inputs) that the service, `movierec
evaluate` and `movierec reindex` load like a trained one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.config import FusionConfig
from model.embedder import EmbedderSpec, MovieEmbedder
from model.fusion import ConcatLinear

CHUNK_ROWS = 8192  # covariance accumulated in chunks: a 1M-movie cache need not fit twice


@dataclass
class FittedProjection:
    model: MovieEmbedder
    movies: int
    explained_variance: float  # share of the features' variance the kept components carry


def unit_concat(text: np.ndarray, image: np.ndarray) -> np.ndarray:
    """[text / |text| ; image / |image|] in float64: the geometry the cosine baseline ranks on."""
    t = text.astype(np.float64)
    i = image.astype(np.float64)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    i /= np.maximum(np.linalg.norm(i, axis=1, keepdims=True), 1e-12)
    return np.concatenate([t, i], axis=1)


def fit_pca_projection(text: np.ndarray, image: np.ndarray, out_dim: int = 256) -> FittedProjection:
    """The top `out_dim` principal components of the movies' unit-concatenated features, as a
    linear fusion head: vector = normalise((x - mean) @ components)."""
    n = len(text)
    if n <= out_dim:
        raise ValueError(f"a {out_dim}-d projection needs more than {out_dim} movies, got {n}")
    dim = text.shape[1] + image.shape[1]
    total = np.zeros(dim)
    scatter = np.zeros((dim, dim))
    for start in range(0, n, CHUNK_ROWS):
        x = unit_concat(text[start : start + CHUNK_ROWS], image[start : start + CHUNK_ROWS])
        total += x.sum(0)
        scatter += x.T @ x
    mean = total / n
    covariance = scatter / n - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    components = eigenvectors[:, ::-1][:, :out_dim]  # (dim, out_dim)
    kept = np.clip(eigenvalues[::-1][:out_dim], 0, None).sum()
    explained = float(kept / max(np.clip(eigenvalues, 0, None).sum(), 1e-12))

    fusion = FusionConfig(text_dim=text.shape[1], image_dim=image.shape[1], out_dim=out_dim)
    model = MovieEmbedder(EmbedderSpec(fusion=fusion, head="linear", input_norm="l2"))
    assert isinstance(model.head, ConcatLinear)
    with torch.no_grad():  # the head sees the unit modalities times l2_scale: undo it here
        linear = model.head.linear
        linear.weight.copy_(torch.from_numpy(components.T / model.l2_scale))
        linear.bias.copy_(torch.from_numpy(-(mean @ components)))
    return FittedProjection(model.eval(), n, explained)
