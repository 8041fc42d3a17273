"""2-D PCA of embeddings coloured by genre group (the thesis' Figure 32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.genres import GENRE_GROUPS


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (points (N, 2), explained variance ratio of the two axes)."""
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    return centred @ vt[:2].T, var[:2] / var.sum()


def plot_genre_pca(
    vectors: np.ndarray, groups: list[list[int]], out: str | Path, title: str = ""
) -> Path:
    """Each movie is coloured by its most specific group (the rarest of its groups among the
    plotted movies, so a Horror|Drama film shows as Horror); movies without a group are grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, ratio = pca_2d(vectors)
    fig, ax = plt.subplots(figsize=(8, 6.5), dpi=120)
    cmap = plt.get_cmap("tab10")
    freq = np.bincount([g for gs in groups for g in gs], minlength=len(GENRE_GROUPS) + 1)
    first = np.array([min(g, key=lambda x: (freq[x], x)) if g else 0 for g in groups])
    none = first == 0
    if none.any():
        ax.scatter(pts[none, 0], pts[none, 1], s=8, c="lightgrey", label="no genre")
    for gid, label in GENRE_GROUPS.items():
        sel = first == gid
        if sel.any():
            ax.scatter(
                pts[sel, 0],
                pts[sel, 1],
                s=10,
                color=cmap(gid - 1),
                label=f"{gid}. {label} ({int(sel.sum())})",
            )
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.set_title(title or f"Embeddings of {len(vectors)} movies, coloured by genre group")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
