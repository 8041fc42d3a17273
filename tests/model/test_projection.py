"""The label-free PCA checkpoint: the same vectors as a PCA computed independently, saved and
loaded like any checkpoint."""

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.projection import fit_pca_projection, unit_concat


def clustered_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Text and image features of movies from 6 latent topics (structured, not i.i.d. noise)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 6, n)
    text = rng.normal(size=(6, 24))[topic] + 0.4 * rng.normal(size=(n, 24))
    image = rng.normal(size=(6, 40))[topic] + 0.4 * rng.normal(size=(n, 40)) + 3.0
    return text.astype(np.float32), image.astype(np.float32)


def test_vectors_equal_an_svd_pca_of_the_unit_concatenated_features(tmp_path):
    text, image = clustered_features(300)
    fitted = fit_pca_projection(text[:200], image[:200], out_dim=16)
    assert fitted.movies == 200 and 0.5 < fitted.explained_variance < 1.0

    x = unit_concat(text[:200], image[:200])  # the oracle: numpy's SVD on the centred features
    mean = x.mean(0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    z = (unit_concat(text[200:], image[200:]) - mean) @ vt[:16].T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    with torch.no_grad():
        got = fitted.model(torch.from_numpy(text[200:]), torch.from_numpy(image[200:])).numpy()
    # components are defined up to sign: compare the cosine geometry, which is what search uses
    np.testing.assert_allclose(got @ got.T, z @ z.T, atol=1e-5)
    explained = (singular[:16] ** 2).sum() / (singular**2).sum()
    assert fitted.explained_variance == pytest.approx(explained, rel=1e-6)

    save_checkpoint(tmp_path / "pca", fitted.model, extra={"method": "pca"})
    loaded, config = load_checkpoint(tmp_path / "pca")
    assert config["spec"]["head"] == "linear" and config["method"] == "pca"
    with torch.no_grad():
        again = loaded(torch.from_numpy(text[200:]), torch.from_numpy(image[200:])).numpy()
    np.testing.assert_allclose(again, got, atol=1e-6)


def test_the_projection_keeps_the_neighbours_the_full_cosine_finds():
    """16 components of 64 dims keep each movie's nearest neighbours far better than a random
    16-d projection does (the service's default without a checkpoint)."""
    from model.fusion import RandomProjection

    text, image = clustered_features(400, seed=1)
    full = unit_concat(text, image)
    full /= np.linalg.norm(full, axis=1, keepdims=True)

    def neighbour_overlap(vectors: np.ndarray, k: int = 10) -> float:
        def top(v: np.ndarray) -> np.ndarray:
            sims = v @ v.T
            np.fill_diagonal(sims, -np.inf)
            return np.argsort(-sims, axis=1)[:, :k]

        a, b = top(full), top(vectors)
        return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))

    t, i = torch.from_numpy(text), torch.from_numpy(image)
    with torch.no_grad():
        pca = fit_pca_projection(text, image, out_dim=16).model(t, i).numpy()
        rand = RandomProjection(24, 40, out_dim=16, seed=0)(t, i).numpy()
    assert neighbour_overlap(pca) > neighbour_overlap(rand) + 0.1


def test_too_few_movies_for_the_dimensions_is_an_error():
    text, image = clustered_features(16)
    with pytest.raises(ValueError, match="needs more than 16 movies, got 16"):
        fit_pca_projection(text, image, out_dim=16)
