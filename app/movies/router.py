"""HTTP routes for movies, similar movies and genre groups. Handlers are sync: FastAPI runs them in
its threadpool, so encoding and FAISS never block the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status
from pydantic import Field

from app.auth import Forbidden, Unauthorized, require_read, require_write
from app.deps import SessionDep, StateDep
from app.errors import (
    InvalidInput,
    MovieNotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    UnsupportedMediaType,
    responses,
)
from app.movies import service
from app.movies.repository import MovieRepository
from app.movies.schemas import (
    Explanation,
    GenreGroupStats,
    MoviePage,
    MovieRead,
    MovieUpdate,
    SimilarMovie,
    SimilarMovies,
)
from app.movies.text import split_genres
from model.genres import GENRE_GROUPS

router = APIRouter(responses=responses(Unauthorized, Forbidden))
GroupId = Annotated[int, Query(ge=1, le=10, description="genre group 1..10 (GET /genre-groups)")]
MAX_ID = 2**63 - 1  # ids are int64 in the database and in FAISS
MovieId = Annotated[int, Path(ge=1, le=MAX_ID)]
ExcludedId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _read_upload(upload: UploadFile, limit: int) -> service.Upload:
    # one byte more than allowed tells "too big" without reading the whole file
    data = upload.file.read(limit + 1)
    name = (upload.filename or "image").replace("/", "_").replace("\\", "_")[:100]
    return service.Upload(name=name, data=data)


@router.post(
    "/movies",
    dependencies=[require_write],
    status_code=status.HTTP_201_CREATED,
    response_model=MovieRead,
    responses={
        200: {"model": MovieRead, "description": "replaced (external_id existed)"},
        **responses(
            InvalidInput, PayloadTooLarge, UnsupportedMediaType, TooManyRequests, ServiceUnavailable
        ),
    },
    summary="Ingest a movie: synopsis + images -> stored, embedded and indexed",
)
def create_movie(
    state: StateDep,
    session: SessionDep,
    response: Response,
    title: Annotated[str, Form(min_length=1, max_length=500)],
    plot: Annotated[str, Form(min_length=1, max_length=20_000)],
    images: Annotated[
        list[UploadFile], File(min_length=1, description="1..N JPEG, PNG or WebP files")
    ],
    genres: Annotated[list[str] | None, Form(description="genre names, English or Korean")] = None,
    year: Annotated[int | None, Form(ge=1870, le=2200)] = None,
    external_id: Annotated[str | None, Form(min_length=1, max_length=255)] = None,
) -> MovieRead:
    uploads = [_read_upload(u, state.settings.max_image_bytes) for u in images]
    movie, created = service.create_or_replace_movie(
        state,
        session,
        title=title,
        plot=plot,
        uploads=uploads,
        genres=split_genres(genres),
        year=year,
        external_id=external_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.movie_read(movie)  # the written row, as committed: no second read


@router.get(
    "/movies",
    response_model=MoviePage,
    dependencies=[require_read],
    summary="List movies, optionally by genre group",
)
def list_movies(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    genre_group: GroupId | None = None,
) -> MoviePage:
    rows, total = MovieRepository(session).page(limit=limit, offset=offset, group=genre_group)
    return MoviePage(
        items=[service.movie_read(m) for m in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/movies/{movie_id}",
    response_model=MovieRead,
    responses=responses(MovieNotFound),
    dependencies=[require_read],
)
def read_movie(session: SessionDep, movie_id: MovieId) -> MovieRead:
    return service.movie_read(service.get_movie(session, movie_id))


@router.patch(
    "/movies/{movie_id}",
    dependencies=[require_write],
    response_model=MovieRead,
    responses=responses(MovieNotFound, InvalidInput),
    summary="Update metadata (title, genres, year) without re-embedding",
)
def patch_movie(
    state: StateDep, session: SessionDep, movie_id: MovieId, body: MovieUpdate
) -> MovieRead:
    movie = service.update_movie(
        state,
        session,
        movie_id,
        title=body.title,
        genres=body.genres,
        year=body.year,
        fields=set(body.model_fields_set),
    )
    return service.movie_read(movie)


@router.delete(
    "/movies/{movie_id}",
    status_code=204,
    responses=responses(MovieNotFound),
    dependencies=[require_write],
)
def delete_movie(state: StateDep, session: SessionDep, movie_id: MovieId) -> Response:
    service.delete_movie(state, session, movie_id)
    return Response(status_code=204)


@router.get(
    "/movies/{movie_id}/similar",
    dependencies=[require_read],
    response_model=SimilarMovies,
    responses=responses(MovieNotFound),
    summary="The k most similar movies, each with a genre-cluster explanation",
)
def read_similar_movies(
    state: StateDep,
    session: SessionDep,
    movie_id: MovieId,
    k: Annotated[int, Query(ge=1, le=100)] = 20,
    exclude: Annotated[
        list[ExcludedId] | None, Query(max_length=1000, description="ids to leave out")
    ] = None,
    genre_group: GroupId | None = None,
) -> Response:
    query, results = service.similar_movies(
        state, session, movie_id, k=k, exclude=set(exclude or []), genre_group=genre_group
    )
    answer = SimilarMovies(
        query=query.read,
        model_version=state.model_version,
        results=[
            SimilarMovie(movie=m.read, score=round(score, 6), explanation=Explanation(**why))
            for m, score, why in results
        ],
    )
    # Built and validated above: serialising it directly skips FastAPI's second validation pass
    # over 21 movies (response_model still documents the shape).
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/genre-groups", response_model=list[GenreGroupStats], dependencies=[require_read])
def read_genre_groups(state: StateDep, session: SessionDep) -> list[GenreGroupStats]:
    sizes = MovieRepository(session).group_sizes()
    return [
        GenreGroupStats(
            id=g, name=name, size=sizes.get(g, 0), tightness=state.centroids.tightness(g)
        )
        for g, name in GENRE_GROUPS.items()
    ]
