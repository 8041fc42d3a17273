"""All SQL for movies lives here; services orchestrate."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import (
    BindParameter,
    Connection,
    Dialect,
    Integer,
    String,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.movies.models import ChangeLog, Movie, MovieFeatures, MovieGenreGroup, MovieVector

IN_CHUNK = 5_000  # ids per IN (...) list, well under every database's bound-parameter limit

# What a movie response needs of the big rows: no vector or feature blobs.
RESPONSE_LOADS = (
    selectinload(Movie.features).load_only(MovieFeatures.image_count),
    selectinload(Movie.vector).load_only(MovieVector.model_version),
)


_CARD_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)


class real_as_text(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it is
    """A float column as text that parses back to the same double. SQLite's CAST keeps 15
    significant digits, so a card's confidence read through it differed from the ORM's in its
    last digit; printf's '%!.17g' keeps them all. PostgreSQL's text output is exact already."""

    type = String()
    name = "real_as_text"
    inherit_cache = True


@compiles(real_as_text)
def _real_as_text(element: real_as_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(cast(column, String), **kw)


@compiles(real_as_text, "sqlite")
def _real_as_text_sqlite(element: real_as_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"printf('%!.17g', {compiler.process(column, **kw)})"


# A card's genre groups as one string per movie, "group:inferred:confidence,...", aggregated by
# the database (group_concat on SQLite, string_agg on PostgreSQL): the cards' read is one
# statement, one round trip to PostgreSQL, where rows and groups took two.
_GROUP_LIST = (
    select(
        func.aggregate_strings(
            cast(MovieGenreGroup.group_id, String)
            + ":"
            + cast(cast(MovieGenreGroup.inferred, Integer), String)
            + ":"
            + real_as_text(MovieGenreGroup.confidence),
            ",",
        )
    )
    .where(MovieGenreGroup.movie_id == Movie.id)
    .scalar_subquery()
)
# The cards' read (`read_cards`): a card's columns, in MovieCard's field order.
CARD_ROWS = (
    select(
        Movie.id,
        Movie.external_id,
        Movie.title,
        Movie.plot,
        Movie.year,
        Movie.genres,
        Movie.created_at,
        Movie.updated_at,
        _GROUP_LIST.label("groups"),
        MovieVector.model_version,
        MovieFeatures.image_count,
        MovieFeatures.text,
        MovieFeatures.image,
    )
    .join(MovieFeatures, MovieFeatures.movie_id == Movie.id)
    .join(MovieVector, MovieVector.movie_id == Movie.id)
    .where(Movie.id.in_(_CARD_IDS))
)


def parse_group_list(text: str | None) -> list[tuple[int, bool, float]]:
    """`_GROUP_LIST`'s string -> [(group id, inferred, confidence)] by group id."""
    if not text:
        return []
    groups = []
    for item in text.split(","):
        group_id, inferred, confidence = item.split(":")
        groups.append((int(group_id), inferred == "1", float(confidence)))
    return sorted(groups)


@lru_cache(maxsize=256)
def card_sql(dialect: Dialect, count: int) -> tuple[str, Callable[[Sequence[int]], tuple | dict]]:
    """`CARD_ROWS` for `count` ids in this dialect's SQL, rendered once, and how to bind the ids.

    Run as driver SQL, a first visit's read skips what SQLAlchemy redoes on every execution of
    a statement: its cache key, the expansion of the id list and the result-type processing
    (0.4 ms of a 1.5 ms read with cold CPU caches, docs/PERFORMANCE.md section 1). Errors still
    surface as SQLAlchemy's `DBAPIError`, and a lost connection is still invalidated.
    """
    state = CARD_ROWS.compile(dialect=dialect).construct_expanded_state({"ids": [0] * count})
    if state.processors:  # bind values that need converting: not for these ints and strings
        raise TypeError(f"CARD_ROWS binds values needing processors: {sorted(state.processors)}")
    fixed, id_names, order = state.parameters, state.parameter_expansion["ids"], state.positiontup

    def bind(ids: Sequence[int]) -> tuple | dict:
        values: dict[str, Any] = {**fixed, **dict(zip(id_names, ids, strict=True))}
        return tuple(values[name] for name in order) if order is not None else values

    return state.statement, bind


def read_cards(connection: Connection, ids: Sequence[int]) -> dict[int, MovieCard]:
    """Cards with raw features for a whole similar-movies answer, in one select run as driver
    SQL (see `card_sql`)."""
    if not ids:
        return {}
    sql, bind = card_sql(connection.dialect, len(ids))
    return {row[0]: card_from_row(row) for row in connection.exec_driver_sql(sql, bind(ids))}


def card_from_row(row: Sequence) -> MovieCard:
    """A `CARD_ROWS` row as the driver returns it -> a card. SQLite hands back JSON and
    datetimes as the text SQLAlchemy stored; PostgreSQL's driver decodes both itself."""
    (
        movie_id, external_id, title, plot, year, genres, created_at, updated_at, groups,
        model_version, image_count, text, image,
    ) = row  # fmt: skip
    return MovieCard(
        id=movie_id,
        external_id=external_id,
        title=title,
        plot=plot,
        year=year,
        genres=list((json.loads(genres) if isinstance(genres, str) else genres) or []),
        created_at=_datetime(created_at),
        updated_at=_datetime(updated_at),
        groups=parse_group_list(groups),
        model_version=model_version,
        image_count=image_count,
        text=from_bytes(text),
        image=from_bytes(image),
    )


def _datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@dataclass
class MovieCard:
    """What a response shows of a movie, read with plain selects (no ORM identity map) on the
    hot path, or built from an ORM row elsewhere."""

    id: int
    external_id: str | None
    title: str
    plot: str
    year: int | None
    genres: list[str]
    created_at: datetime
    updated_at: datetime
    groups: list[tuple[int, bool, float]]  # (group id, inferred, confidence)
    model_version: str | None
    image_count: int | None
    text: np.ndarray | None = None  # raw encoder features, for explanations
    image: np.ndarray | None = None

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """(text, image) raw features; only cards read by `MovieRepository.cards` carry them."""
        if self.text is None or self.image is None:
            raise ValueError(f"card {self.id} was read without its features")
        return self.text, self.image

    @classmethod
    def from_movie(cls, m: Movie) -> MovieCard:
        return cls(
            id=m.id,
            external_id=m.external_id,
            title=m.title,
            plot=m.plot,
            year=m.year,
            genres=list(m.genres or []),
            created_at=m.created_at,
            updated_at=m.updated_at,
            groups=[(g.group_id, g.inferred, g.confidence) for g in m.groups],
            model_version=m.vector.model_version if m.vector else None,
            image_count=m.features.image_count if m.features else None,
        )


def to_bytes(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def from_bytes(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


class StoredFeaturesMismatch(ValueError):
    """Stored raw features of another size than the configured encoders give: made by other
    encoders, so no vector can be computed from them with these."""

    def __init__(
        self, movie_id: int, models: tuple[str, str], stored: tuple[int, int], want: tuple[int, int]
    ) -> None:
        super().__init__(
            f"movie {movie_id}'s stored features are {stored[0]} + {stored[1]} floats, made by "
            f"{models[0]!r} + {models[1]!r}; the configured encoders (MOVIEREC_TEXT_MODEL, "
            f"MOVIEREC_IMAGE_MODEL) give {want[0]} + {want[1]}. Vectors can only be recomputed "
            "from features of the same encoders: configure those encoders again, or import the "
            "catalogue into a new database with the new ones (the images are not stored)"
        )


class MovieRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, movie_id: int, *, with_data: bool = False) -> Movie | None:
        stmt = select(Movie).where(Movie.id == movie_id)
        if with_data:
            stmt = stmt.options(*RESPONSE_LOADS)
        return self.session.scalar(stmt)

    def cards(self, ids: Sequence[int]) -> dict[int, MovieCard]:
        """`read_cards` in this session's transaction."""
        return read_cards(self.session.connection(), ids)

    def by_external_id(self, external_id: str) -> Movie | None:
        return self.session.scalar(select(Movie).where(Movie.external_id == external_id))

    def page(self, *, limit: int, offset: int, group: int | None) -> tuple[list[Movie], int]:
        stmt = select(Movie)
        count = select(func.count()).select_from(Movie)
        if group is not None:
            member = select(MovieGenreGroup.movie_id).where(MovieGenreGroup.group_id == group)
            stmt, count = stmt.where(Movie.id.in_(member)), count.where(Movie.id.in_(member))
        stmt = stmt.options(*RESPONSE_LOADS)
        rows = list(self.session.scalars(stmt.order_by(Movie.id).limit(limit).offset(offset)))
        return rows, int(self.session.scalar(count) or 0)

    def ids_in_group(self, group: int) -> list[int]:
        stmt = select(MovieGenreGroup.movie_id).where(MovieGenreGroup.group_id == group)
        return list(self.session.scalars(stmt))

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

    def vector_count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(MovieVector)) or 0)

    def live_ids(self) -> set[int]:
        return set(self.session.scalars(select(MovieVector.movie_id)))

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Vectors by id, in chunks: SQLite refuses more than 32,766 (or 250,000) bound
        parameters in one statement, and start-up asks for every labelled movie's vector."""
        wanted, out = list(ids), {}
        for start in range(0, len(wanted), IN_CHUNK):
            stmt = select(MovieVector.movie_id, MovieVector.vector).where(
                MovieVector.movie_id.in_(wanted[start : start + IN_CHUNK])
            )
            out.update({i: from_bytes(v) for i, v in self.session.execute(stmt)})
        return out

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

    def iter_features(
        self, batch: int = 2000, dims: tuple[int, int] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(ids, text, image) feature arrays in id order, a batch at a time (plain selects).
        `dims`: the (text, image) sizes the caller can use; a row of other sizes raises
        `StoredFeaturesMismatch` naming it, before anything is computed from its batch."""
        last = -1
        while True:
            stmt = (
                select(
                    MovieFeatures.movie_id,
                    MovieFeatures.text,
                    MovieFeatures.image,
                    MovieFeatures.text_model,
                    MovieFeatures.image_model,
                )
                .where(MovieFeatures.movie_id > last)
                .order_by(MovieFeatures.movie_id)
                .limit(batch)
            )
            rows = self.session.execute(stmt).all()
            if not rows:
                return
            want = dims or (len(rows[0][1]) // 4, len(rows[0][2]) // 4)
            for movie_id, text, image, text_model, image_model in rows:
                stored = (len(text) // 4, len(image) // 4)
                if stored != want:
                    raise StoredFeaturesMismatch(movie_id, (text_model, image_model), stored, want)
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield (
                ids,
                np.stack([from_bytes(r[1]) for r in rows]),
                np.stack([from_bytes(r[2]) for r in rows]),
            )
            last = int(ids[-1])

    def update_vectors(self, ids: np.ndarray, vectors: np.ndarray, model_version: str) -> None:
        """One executemany UPDATE by primary key for a batch of recomputed vectors."""
        self.session.execute(
            update(MovieVector),
            [
                {"movie_id": int(i), "model_version": model_version, "vector": to_bytes(v)}
                for i, v in zip(ids, vectors, strict=True)
            ],
        )

    def labelled_groups(self) -> list[tuple[int, int]]:
        stmt = select(MovieGenreGroup.movie_id, MovieGenreGroup.group_id).where(
            MovieGenreGroup.inferred.is_(False)
        )
        return [(int(a), int(b)) for a, b in self.session.execute(stmt)]

    def group_sizes(self) -> dict[int, int]:
        stmt = select(MovieGenreGroup.group_id, func.count()).group_by(MovieGenreGroup.group_id)
        return {int(g): int(n) for g, n in self.session.execute(stmt)}

    def sample_features(
        self, limit: int, seed: int = 0, max_rounds: int = 20
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Raw features of up to `limit` movies drawn at random from the whole catalogue, not its
        first rows: a catalogue imported genre by genre would otherwise calibrate explanations
        on pairs of one genre. Ids are drawn in the stored id range (no scan of the 13 KB rows),
        the draws after the first scaled by the share of drawn ids that exist (deletions leave
        gaps); a catalogue with very sparse ids may give fewer than `limit`."""
        lo, hi = self.session.execute(
            select(func.min(MovieFeatures.movie_id), func.max(MovieFeatures.movie_id))
        ).one()
        if lo is None:
            return []
        rng = np.random.default_rng(seed)
        tried: set[int] = set()
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in range(max_rounds):
            missing, untried = limit - len(found), hi - lo + 1 - len(tried)
            if missing <= 0 or untried <= 0:
                break
            hit_rate = len(found) / len(tried) if found else 1.0
            want = min(IN_CHUNK, int(missing / max(hit_rate, 0.01) * 1.1) + 10)
            if untried <= want:  # a small catalogue: every id not tried yet
                draw = sorted(set(range(lo, hi + 1)) - tried)
            else:
                draw = sorted(set(rng.integers(lo, hi + 1, want).tolist()) - tried)
            tried.update(draw)
            stmt = select(MovieFeatures.text, MovieFeatures.image).where(
                MovieFeatures.movie_id.in_(draw)
            )
            rows = self.session.execute(stmt).all()
            # the rows come back in id order: keep a random subset, not the lowest ids
            for i in rng.permutation(len(rows))[:missing]:
                found.append((from_bytes(rows[i][0]), from_bytes(rows[i][1])))
        return found
