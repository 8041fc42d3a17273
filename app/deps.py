"""Typed dependencies: the app state and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.state import AppState


def get_state(request: Request) -> AppState:
    return request.app.state.movierec


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.movierec.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
