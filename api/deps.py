"""Dependencies shared by the routers: the database session and admin authentication."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.api_keys import authenticate_api_key
from core.db import session_scope
from core.errors import AuthenticationError
from models import ApiKey

bearer = HTTPBearer(auto_error=False, description="Admin API key or license JWT")


def get_db() -> Iterator[Session]:
    """The request's unit of work: committed when the endpoint returns, rolled back on any error.

    Endpoints and services never commit. `scope="function"` below makes the commit happen before
    the response is sent, so a 2xx always means committed. A lost database connection becomes a
    503 in api/errors.py, for every route alike.
    """
    with session_scope() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db, scope="function")]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing Authorization: Bearer header")
    return credentials.credentials


def require_admin(session: DbSession, credentials: BearerCredentials) -> ApiKey:
    return authenticate_api_key(session, bearer_token(credentials))


AdminKey = Annotated[ApiKey, Depends(require_admin)]
