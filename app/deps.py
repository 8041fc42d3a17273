"""Typed dependencies: the app state and a database session per request.

Both are `async def`: FastAPI runs a sync dependency in its threadpool, one thread hop each (and
two for a sync generator), about 0.1 ms apiece on two cores, which a warm similar-movies answer
(no database read at all) paid five times over (docs/PERFORMANCE.md section 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.state import AppState


async def get_state(request: Request) -> AppState:
    return request.app.state.movierec


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. Making one does no I/O; closing one does only while it holds a
    connection in a transaction (a rollback), and then it runs in the threadpool, off the event
    loop. It is closed when the endpoint returns, before the response is sent (`SessionDep`'s
    scope): closed after it, a read's rollback ran while the client's next request did and took
    cores from its search (docs/PERFORMANCE.md section 1)."""
    session = request.app.state.movierec.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
