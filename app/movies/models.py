"""ORM rows. The database is the source of truth for every vector; FAISS is a rebuildable cache."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Movie(Base):
    __tablename__ = "movies"
    __table_args__ = {"sqlite_autoincrement": True}  # a deleted id is never reused

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    plot: Mapped[str] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    groups: Mapped[list[MovieGenreGroup]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="MovieGenreGroup.group_id"
    )
    features: Mapped[MovieFeatures | None] = relationship(cascade="all, delete-orphan")
    vector: Mapped[MovieVector | None] = relationship(cascade="all, delete-orphan")


class MovieGenreGroup(Base):
    """A movie's genre group: labelled (from its genres) or inferred (nearest centroid)."""

    __tablename__ = "movie_genre_groups"

    movie_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    inferred: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)


class MovieFeatures(Base):
    """Raw frozen-encoder outputs (float32 bytes): reindexing never re-decodes images."""

    __tablename__ = "movie_features"

    movie_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True
    )
    text_model: Mapped[str] = mapped_column(String(500))
    image_model: Mapped[str] = mapped_column(String(500))
    text: Mapped[bytes] = mapped_column(LargeBinary)
    image: Mapped[bytes] = mapped_column(LargeBinary)
    image_count: Mapped[int] = mapped_column(Integer)


class MovieVector(Base):
    """The 256-d unit vector served by the index, and the model version that made it."""

    __tablename__ = "movie_vectors"

    movie_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True
    )
    model_version: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ChangeLog(Base):
    """Monotonic log of index-affecting changes; the index replays entries newer than its
    snapshot."""

    __tablename__ = "change_log"
    __table_args__ = {"sqlite_autoincrement": True}  # seq never goes backwards

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    movie_id: Mapped[int] = mapped_column(BigInteger, index=True)
    op: Mapped[str] = mapped_column(String(10))  # "upsert" | "delete"
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
