"""API keys: stored as SHA-256 hashes, compared in constant time, with read and write scopes.

MOVIEREC_API_KEYS="write:<sha256 hex>,read:<sha256 hex>,..." - several keys at once, so a key can be
rotated by adding the new one before removing the old. `movierec api-key --scope write` makes one.
No keys configured: the service runs open (local use) and says so loudly at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from app.errors import AppError

SCOPES = ("read", "write")  # write implies read
HEADER = "X-API-Key"


class Unauthorized(AppError):
    status_code = 401
    headers = {"WWW-Authenticate": HEADER}


class Forbidden(AppError):
    status_code = 403


@dataclass(frozen=True)
class KeyRing:
    entries: tuple[tuple[str, bytes], ...]  # (scope, sha256 digest)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        entries = []
        for item in (x.strip() for x in spec.split(",")):
            if not item:
                continue
            scope, _, digest = item.partition(":")
            if scope not in SCOPES or len(digest) != 64:
                raise ValueError(
                    f"MOVIEREC_API_KEYS entry {item[:12]!r}...: want 'read|write:<sha256 hex>'"
                )
            entries.append((scope, bytes.fromhex(digest)))
        return cls(tuple(entries))

    @property
    def open(self) -> bool:
        return not self.entries

    def scope_of(self, key: str) -> str | None:
        """Compare against every entry (no early exit) so timing says nothing about which
        matched."""
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for scope, stored in self.entries:
            if hmac.compare_digest(digest, stored) and found != "write":
                found = scope
        return found


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "mrk_" + secrets.token_urlsafe(32)


_header = APIKeyHeader(name=HEADER, auto_error=False, description="API key (read or write scope)")


def _require(scope: str):
    async def check(request: Request, key: Annotated[str | None, Depends(_header)]) -> None:
        # async: a hash and a dict lookup, not worth a threadpool hop per request (app/deps.py)
        ring: KeyRing = request.app.state.keyring
        if ring.open:
            return
        if not key:
            raise Unauthorized(f"missing {HEADER} header")
        have = ring.scope_of(key)
        if have is None:
            raise Unauthorized("invalid API key")
        if scope == "write" and have != "write":
            raise Forbidden("this key has read scope; writing needs a write key")

    return check


require_read = Depends(_require("read"))
require_write = Depends(_require("write"))
