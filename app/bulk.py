"""Bulk import of a dataset folder: batched encoding, one commit per batch, resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.movies.models import Movie, MovieFeatures, MovieVector
from app.movies.repository import MovieRepository, to_bytes
from app.movies.service import assign_groups, labelled_groups
from app.state import AppState
from model.data import load_dataset
from model.features import load_images


def import_dataset(
    state: AppState,
    root: Path,
    *,
    batch_size: int = 32,
    max_images: int = 16,
    limit: int | None = None,
    replace: bool = False,
) -> dict[str, int]:
    dataset = load_dataset(root, state.mapper)
    movies = dataset.movies[:limit] if limit else dataset.movies
    stats = {"imported": 0, "skipped": 0, "without_images": 0}
    emb = state.embedder
    for start in tqdm(range(0, len(movies), batch_size), desc="import", unit="batch"):
        chunk = movies[start : start + batch_size]
        with state.sessions() as session:
            repo = MovieRepository(session)
            todo = []
            for m in chunk:
                if not m.image_paths:
                    stats["without_images"] += 1
                    continue
                if not replace and repo.by_external_id(str(m.id)) is not None:
                    stats["skipped"] += 1
                    continue
                todo.append(m)
            if not todo:
                continue
            text = emb.text_encoder.encode([m.plot or m.title for m in todo])
            image = emb.image_encoder.encode_movies(
                [load_images(m.image_paths, max_images) for m in todo]
            )
            vectors = emb.fuse(text, image)
            with state.write_lock:
                rows = []
                for m, t, i, v in zip(todo, text, image, vectors, strict=True):
                    movie = repo.by_external_id(str(m.id)) or Movie(external_id=str(m.id))
                    movie.title, movie.plot, movie.year = m.title, m.plot or m.title, m.year
                    movie.genres = m.genres
                    session.add(movie)
                    repo.set_groups(movie, assign_groups(state, m.genres, v))
                    session.flush()
                    movie.features = MovieFeatures(
                        text_model=emb.text_model,
                        image_model=emb.image_model,
                        text=to_bytes(t),
                        image=to_bytes(i),
                        image_count=min(len(m.image_paths), max_images),
                    )
                    movie.vector = MovieVector(
                        model_version=state.model_version, vector=to_bytes(v)
                    )
                    repo.log_change(movie.id, "upsert")
                    rows.append((movie.id, labelled_groups(movie), v))
                session.commit()
                state.cards.invalidate([r[0] for r in rows])
                state.index.upsert(np.array([r[0] for r in rows]), np.stack([r[2] for r in rows]))
                for _, groups, v in rows:
                    state.centroids.add(groups, v)
            stats["imported"] += len(todo)
    return stats
