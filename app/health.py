"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.deps import StateDep
from app.movies.repository import MovieRepository
from app.movies.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="The process is alive")
def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    summary="Database reachable, models loaded, index holding as many movies as the database",
)
def ready(state: StateDep, response: Response) -> Readiness:
    database, stored, consistent = True, -1, False
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
            # A count, not the id sets: probes call this every few seconds, and comparing 1M ids
            # takes seconds. Start-up reconciles the index with the database id by id.
            stored = MovieRepository(session).vector_count()
        consistent = stored == len(state.index)
    except DBAPIError:
        database = False
    ok = database and consistent
    if not ok:
        response.status_code = 503
    return Readiness(
        status="ready" if ok else "not ready",
        database=database,
        models_loaded=True,
        index_consistent=consistent,
        indexed=len(state.index),
        stored=stored,
        model_version=state.model_version,
        fallback_model=state.embedder.fallback,
        index_kind=state.index.kind,
        device=state.embedder.device.type,
        encoder_precision=state.embedder.precision,
    )
