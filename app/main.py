"""The ASGI app: `app.main:app`. Nothing heavy happens at import; models load in the lifespan."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from app import health
from app.auth import KeyRing
from app.config import Settings
from app.errors import install_error_handlers
from app.lifespan import make_lifespan
from app.limits import BodySizeLimit
from app.movies import router as movies
from app.search.embedder import Embedder


def create_app(
    settings: Settings | None = None,
    embedder_factory: Callable[[Settings], Embedder] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="movierec",
        version="0.1.0",
        summary="Content-based 'more like this' for video catalogs, with genre-cluster reasons.",
        lifespan=make_lifespan(settings, embedder_factory),
    )
    app.state.keyring = KeyRing.parse(settings.api_keys)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(movies.router, tags=["movies"])
    return app


app = create_app()
