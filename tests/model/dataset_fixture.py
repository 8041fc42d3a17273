"""A small synthetic dataset folder in the thesis layout."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.helpers import image_bytes

GENRES = [
    "Horror|Thriller",
    "Comedy",
    "Drama|Romance",
    "Animation|Family",
    "Action|War",
    "Documentary",
]


def write_dataset(root: Path, n: int = 24, with_images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "movies.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["id", "title", "year", "genres"])
        for i in range(1, n + 1):
            w.writerow([i, f"Movie {i}", 2000 + i % 20, GENRES[i % len(GENRES)]])
    with (root / "plots.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["id", "plot"])
        for i in range(1, n + 1):
            w.writerow(
                [
                    i,
                    f"a {GENRES[i % len(GENRES)].split('|')[0].lower()} story of a family "
                    f"and a dark city, number {i}",
                ]
            )
    with (root / "similar.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["target_id", "similar_id", "source"])
        for i in range(1, n + 1):
            for j in range(1, n + 1):
                if i != j and i % len(GENRES) == j % len(GENRES):
                    w.writerow([i, j, "tmdb_similar"])
            w.writerow([i, (i % n) + 1, "tmdb_recommendations"])  # a cross-genre relation
    if with_images:
        for i in range(1, n + 1):
            d = root / "images" / str(i)
            d.mkdir(parents=True, exist_ok=True)
            (d / "poster.jpg").write_bytes(image_bytes("JPEG", seed=i % len(GENRES)))
            if i % 2:
                (d / "still1.png").write_bytes(image_bytes("PNG", seed=100 + i))
    return root
