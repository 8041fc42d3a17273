"""The dataset folder layout (thesis / tmdb-similar), splits, relevance and triplet sampling.

Layout: movies.csv (id,title[,year,genres]), plots.csv (id,plot), similar.csv
(target_id,similar_id), images/<id>/* (one folder of posters/stills per movie id).
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.config import Sampling
from model.genres import GenreMapper

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class Movie:
    id: int
    title: str
    plot: str
    genres: list[str]
    groups: list[int]
    year: int | None = None
    image_paths: list[Path] = field(default_factory=list)


@dataclass
class Dataset:
    root: Path
    movies: list[Movie]
    related: dict[int, set[int]]  # target id -> related ids, as listed (directed)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.movies]

    def by_id(self) -> dict[int, Movie]:
        return {m.id: m for m in self.movies}

    def fingerprint(self) -> str:
        """sha256 over ids, plots and relevance: recorded in checkpoints to tie them to their
        data."""
        h = hashlib.sha256()
        for m in self.movies:
            h.update(f"{m.id}\x00{m.plot}\x00{','.join(m.genres)}\n".encode())
        for t in sorted(self.related):
            h.update(f"{t}:{sorted(self.related[t])}\n".encode())
        return h.hexdigest()[:16]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_dataset(root: str | Path, mapper: GenreMapper | None = None) -> Dataset:
    """Read a dataset folder; raises FileNotFoundError/ValueError naming what is wrong."""
    root = Path(root)
    mapper = mapper or GenreMapper()
    for name in ("movies.csv", "plots.csv"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing (dataset layout: see README)")
    plots = {int(r["id"]): r["plot"] for r in _read_csv(root / "plots.csv")}
    movies: list[Movie] = []
    for row in _read_csv(root / "movies.csv"):
        movie_id = int(row["id"])
        genres = [g for g in (row.get("genres") or "").split("|") if g]
        year = row.get("year")
        folder = root / "images" / str(movie_id)
        images = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        movies.append(
            Movie(
                id=movie_id,
                title=row["title"],
                plot=plots.get(movie_id, ""),
                genres=genres,
                groups=mapper.groups_of(genres),
                year=int(year) if year else None,
                image_paths=images,
            )
        )
    related: dict[int, set[int]] = defaultdict(set)
    if (root / "similar.csv").is_file():
        known = {m.id for m in movies}
        for row in _read_csv(root / "similar.csv"):
            t, s = int(row["target_id"]), int(row["similar_id"])
            if t != s and t in known and s in known:
                related[t].add(s)
    return Dataset(root=root, movies=movies, related=dict(related))


def relevance(dataset: Dataset, *, related_only: bool = False) -> dict[int, set[int]]:
    """The thesis' rule: similar = related AND sharing a genre group; `related_only`
    drops the second."""
    if related_only:
        return {t: set(s) for t, s in dataset.related.items()}
    groups = {m.id: set(m.groups) for m in dataset.movies}
    return {t: {s for s in sims if groups[t] & groups[s]} for t, sims in dataset.related.items()}


@dataclass
class Split:
    train: list[int]
    test: list[int]
    validation: list[int]


def split_ids(ids: list[int], *, seed: int = 0, fractions=(0.64, 0.26, 0.10)) -> Split:
    """Seeded 64/26/10 train/test/validation split over movies (the thesis' proportions)."""
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    n_train = round(len(ids) * fractions[0])
    n_test = round(len(ids) * fractions[1])
    return Split(
        train=sorted(order[:n_train]),
        test=sorted(order[n_train : n_train + n_test]),
        validation=sorted(order[n_train + n_test :]),
    )


def restrict(rel: dict[int, set[int]], ids: list[int]) -> dict[int, set[int]]:
    """Relevance inside a closed catalogue: both ends in `ids`, targets with no relevant dropped."""
    keep = set(ids)
    out = {t: s & keep for t, s in rel.items() if t in keep}
    return {t: s for t, s in out.items() if s}


def undirected(rel: dict[int, set[int]]) -> dict[int, set[int]]:
    """Training positives are symmetric: if b is similar to a, a is similar to b."""
    out: dict[int, set[int]] = defaultdict(set)
    for t, sims in rel.items():
        for s in sims:
            out[t].add(s)
            out[s].add(t)
    return dict(out)


class TripletSampler:
    """(anchor, positive, negative) row indices for one split.

    Positive: from the anchor's similar set. Negative: a movie sharing no genre group with the
    anchor and not related to it (any unrelated movie when the anchor has no group).
    """

    def __init__(
        self,
        ids: list[int],
        groups: dict[int, list[int]],
        positives: dict[int, set[int]],
        seed: int = 0,
    ) -> None:
        self.ids = list(ids)
        self.row = {movie_id: i for i, movie_id in enumerate(self.ids)}
        self.rng = np.random.default_rng(seed)
        n = len(self.ids)
        group_sets = [set(groups.get(i, [])) for i in self.ids]
        # (N, N) bool: j is a valid negative for i. Small catalogues only (a few thousand movies).
        group_matrix = np.zeros((n, 11), dtype=bool)
        for r, gs in enumerate(group_sets):
            group_matrix[r, list(gs)] = True
        share = (group_matrix.astype(np.int32) @ group_matrix.T.astype(np.int32)) > 0
        self.negative_mask = ~share
        np.fill_diagonal(self.negative_mask, False)
        self.positive_rows: list[np.ndarray] = []
        for r, movie_id in enumerate(self.ids):
            pos = [self.row[p] for p in positives.get(movie_id, ()) if p in self.row]
            self.positive_rows.append(np.array(pos, dtype=np.int64))
            if pos:
                self.negative_mask[r, pos] = False
        self.anchors = np.array([r for r in range(n) if len(self.positive_rows[r])], dtype=np.int64)
        no_negative = ~self.negative_mask.any(axis=1)
        # An anchor whose groups cover everyone falls back to "any unrelated movie".
        for row in np.flatnonzero(no_negative):
            self.negative_mask[row] = True
            self.negative_mask[row, row] = False
            self.negative_mask[row, self.positive_rows[row]] = False

        # every (anchor, positive) pair once: the thesis' unit of training (target, similar)
        self.pairs = np.array(
            [(r, p) for r in self.anchors for p in self.positive_rows[r]], dtype=np.int64
        ).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.anchors)

    def epoch(self, batch_size: int, per: Sampling = "pair") -> list[np.ndarray]:
        """One epoch of (B, 3) row-index batches, shuffled.

        per="pair": one triplet per similar pair, so an anchor with many similar movies is seen
        as often as it has them (and an epoch has as many steps as pairs / batch).
        per="anchor": one triplet per anchor with a random positive."""
        if per == "pair":
            pairs = self.pairs[self.rng.permutation(len(self.pairs))]
            return [
                self._with_negatives(pairs[s : s + batch_size])
                for s in range(0, len(pairs), batch_size)
            ]
        anchors = self.rng.permutation(self.anchors)
        return [
            self.sample(anchors[s : s + batch_size]) for s in range(0, len(anchors), batch_size)
        ]

    def sample(self, anchors: np.ndarray) -> np.ndarray:
        """A random positive and a random negative for each anchor."""
        out = np.empty((len(anchors), 3), dtype=np.int64)
        for k, a in enumerate(anchors):
            out[k, 0] = a
            out[k, 1] = self.rng.choice(self.positive_rows[a])
            out[k, 2] = self._negative(a)
        return out

    def _with_negatives(self, pairs: np.ndarray) -> np.ndarray:
        negatives = np.array([self._negative(a) for a in pairs[:, 0]], dtype=np.int64)
        return np.column_stack([pairs, negatives])

    def _negative(self, anchor: int) -> int:
        return int(self.rng.choice(np.flatnonzero(self.negative_mask[anchor])))

    def fixed(self, seed: int = 1234) -> np.ndarray:
        """A deterministic triplet per anchor: the validation loss must not move with the RNG."""
        saved, self.rng = self.rng, np.random.default_rng(seed)
        try:
            return self.sample(self.anchors)
        finally:
            self.rng = saved
