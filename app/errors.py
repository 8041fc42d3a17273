"""One error base, one handler, one body: {"error": "<Name>", "detail": "<human message>"}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("movierec.errors")


class ErrorBody(BaseModel):
    error: str
    detail: str


class AppError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def name(self) -> str:
        return type(self).__name__


class MovieNotFound(AppError):
    status_code = 404


class InvalidImage(AppError):
    status_code = 422


class UnsupportedMediaType(AppError):
    status_code = 415


class PayloadTooLarge(AppError):
    status_code = 413


class InvalidInput(AppError):
    status_code = 422


class TooManyRequests(AppError):
    status_code = 429
    headers = {"Retry-After": "1"}


class ServiceUnavailable(AppError):
    status_code = 503
    headers = {"Retry-After": "2"}


def error_response(status: int, name: str, detail: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": name, "detail": detail}, status_code=status, headers=headers)


def responses(*errors: type[AppError]) -> dict:
    """OpenAPI `responses=` for the errors an endpoint can raise."""
    out: dict = {}
    for err in errors:
        out.setdefault(err.status_code, {"model": ErrorBody, "description": err.__name__})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return error_response(exc.status_code, exc.name, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}")
        return error_response(422, "ValidationError", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {
            404: "NotFound",
            405: "MethodNotAllowed",
            413: "PayloadTooLarge",
            400: "BadRequest",
        }
        return error_response(
            exc.status_code,
            names.get(exc.status_code, "HTTPError"),
            str(exc.detail),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(
            503, "DatabaseUnavailable", "the database is unreachable; retry", {"Retry-After": "2"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "InternalError", "unexpected server error; it has been logged")
