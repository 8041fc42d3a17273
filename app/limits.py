"""ASGI middleware bounding the request body, with or without a Content-Length header."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
                response = error_response(400, "BadRequest", "invalid Content-Length header")
                await response(scope, receive, send)
                return
            if too_big:
                response = error_response(
                    413,
                    "PayloadTooLarge",
                    f"request body of {int(declared)} bytes exceeds the "
                    f"{self.max_bytes}-byte limit",
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI re-raises HTTPException from body parsing; our handler renders it.
                    raise HTTPException(
                        413, f"request body exceeds the {self.max_bytes}-byte limit"
                    )
            return message

        await self.app(scope, limited_receive, send)
