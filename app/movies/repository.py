"""All SQL for movies lives here; services orchestrate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from app.movies.models import ChangeLog, Movie, MovieFeatures, MovieGenreGroup, MovieVector


def to_bytes(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def from_bytes(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


class MovieRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, movie_id: int, *, with_data: bool = False) -> Movie | None:
        stmt = select(Movie).where(Movie.id == movie_id)
        if with_data:
            stmt = stmt.options(selectinload(Movie.features), selectinload(Movie.vector))
        return self.session.scalar(stmt)

    def get_many(self, ids: Sequence[int]) -> dict[int, Movie]:
        """One round trip (plus eager loads) for a whole result page, keyed by id."""
        if not ids:
            return {}
        stmt = (
            select(Movie)
            .where(Movie.id.in_(list(ids)))
            .options(selectinload(Movie.features), selectinload(Movie.vector))
        )
        return {m.id: m for m in self.session.scalars(stmt)}

    def by_external_id(self, external_id: str) -> Movie | None:
        return self.session.scalar(select(Movie).where(Movie.external_id == external_id))

    def page(self, *, limit: int, offset: int, group: int | None) -> tuple[list[Movie], int]:
        stmt = select(Movie)
        count = select(func.count()).select_from(Movie)
        if group is not None:
            member = select(MovieGenreGroup.movie_id).where(MovieGenreGroup.group_id == group)
            stmt, count = stmt.where(Movie.id.in_(member)), count.where(Movie.id.in_(member))
        stmt = stmt.options(selectinload(Movie.vector), selectinload(Movie.features))
        rows = list(self.session.scalars(stmt.order_by(Movie.id).limit(limit).offset(offset)))
        return rows, int(self.session.scalar(count) or 0)

    def ids_in_group(self, group: int) -> set[int]:
        stmt = select(MovieGenreGroup.movie_id).where(MovieGenreGroup.group_id == group)
        return set(self.session.scalars(stmt))

    def set_groups(self, movie: Movie, groups: list[tuple[int, bool, float]]) -> None:
        movie.groups = [
            MovieGenreGroup(group_id=g, inferred=inferred, confidence=conf)
            for g, inferred, conf in groups
        ]

    def log_change(self, movie_id: int, op: str) -> None:
        self.session.add(ChangeLog(movie_id=movie_id, op=op))

    def last_seq(self) -> int:
        return int(self.session.scalar(select(func.max(ChangeLog.seq))) or 0)

    def changes_after(self, seq: int) -> list[tuple[int, int, str]]:
        stmt = select(ChangeLog.seq, ChangeLog.movie_id, ChangeLog.op).where(ChangeLog.seq > seq)
        return [tuple(r) for r in self.session.execute(stmt.order_by(ChangeLog.seq))]  # type: ignore[misc]

    def delete(self, movie: Movie) -> None:
        self.session.delete(movie)

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Movie)) or 0)

    def live_ids(self) -> set[int]:
        return set(self.session.scalars(select(MovieVector.movie_id)))

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        stmt = select(MovieVector.movie_id, MovieVector.vector).where(
            MovieVector.movie_id.in_(list(ids))
        )
        return {i: from_bytes(v) for i, v in self.session.execute(stmt)}

    def iter_vectors(self, batch: int = 5000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, for rebuilding the index from the source of truth."""
        last = -1
        while True:
            stmt = (
                select(MovieVector.movie_id, MovieVector.vector)
                .where(MovieVector.movie_id > last)
                .order_by(MovieVector.movie_id)
                .limit(batch)
            )
            rows = self.session.execute(stmt).all()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([from_bytes(r[1]) for r in rows])
            last = int(ids[-1])

    def iter_features(self, batch: int = 2000) -> Iterator[list[MovieFeatures]]:
        last = -1
        while True:
            stmt = (
                select(MovieFeatures)
                .where(MovieFeatures.movie_id > last)
                .order_by(MovieFeatures.movie_id)
                .limit(batch)
            )
            rows = list(self.session.scalars(stmt))
            if not rows:
                return
            yield rows
            last = rows[-1].movie_id
            self.session.expunge_all()

    def labelled_groups(self) -> list[tuple[int, int]]:
        stmt = select(MovieGenreGroup.movie_id, MovieGenreGroup.group_id).where(
            MovieGenreGroup.inferred.is_(False)
        )
        return [(int(a), int(b)) for a, b in self.session.execute(stmt)]

    def group_sizes(self) -> dict[int, int]:
        stmt = select(MovieGenreGroup.group_id, func.count()).group_by(MovieGenreGroup.group_id)
        return {int(g): int(n) for g, n in self.session.execute(stmt)}

    def sample_features(self, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
        stmt = select(MovieFeatures.text, MovieFeatures.image).order_by(MovieFeatures.movie_id)
        return [(from_bytes(t), from_bytes(i)) for t, i in self.session.execute(stmt.limit(limit))]

    def purge_vectors(self) -> None:
        self.session.execute(delete(MovieVector))
