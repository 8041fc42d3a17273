"""Request/response schemas, separate from the ORM rows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class GenreGroupRef(BaseModel):
    id: int = Field(ge=1, le=10)
    name: str
    inferred: bool = Field(description="true: nearest cluster, the movie had no labelled genre")
    confidence: float = Field(
        description="1.0 for labelled groups; cosine to the centroid if inferred"
    )


class MovieRead(BaseModel):
    id: int
    external_id: str | None
    title: str
    plot: str
    year: int | None
    genres: list[str]
    genre_groups: list[GenreGroupRef]
    model_version: str | None
    image_count: int | None
    created_at: datetime
    updated_at: datetime


class MoviePage(BaseModel):
    items: list[MovieRead]
    total: int
    limit: int
    offset: int


class MovieUpdate(BaseModel):
    """PATCH body: metadata only; the vector is not recomputed."""

    title: str | None = Field(default=None, min_length=1, max_length=500)
    genres: list[str] | None = Field(default=None, max_length=50)
    year: int | None = Field(default=None, ge=1870, le=2200)


class Explanation(BaseModel):
    query_groups: list[str]
    result_groups: list[str]
    shared_groups: list[str]
    text_similarity: float = Field(description="cosine of the raw synopsis features")
    image_similarity: float = Field(description="cosine of the raw mean image features")
    driver: str = Field(description="'plot', 'images' or 'both': which modality drove the match")
    reason: str


class SimilarMovie(BaseModel):
    movie: MovieRead
    score: float = Field(description="cosine similarity in the 256-d space")
    explanation: Explanation


class SimilarMovies(BaseModel):
    query: MovieRead
    model_version: str
    results: list[SimilarMovie]


class GenreGroupStats(BaseModel):
    id: int
    name: str
    size: int = Field(description="movies labelled or inferred in this group")
    tightness: float | None = Field(
        description="mean cosine of labelled members to their centroid (1 = one point); "
        "null if empty"
    )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: bool
    models_loaded: bool
    index_consistent: bool
    indexed: int
    stored: int
    model_version: str
    fallback_model: bool
    index_kind: str
    device: str  # where the encoders run: cpu, cuda, mps
    encoder_precision: str  # what they compute in: fp32 or bf16 (MOVIEREC_ENCODER_PRECISION)
