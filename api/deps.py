"""Dependencies shared by the routers: the database session and admin authentication."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core import audit
from core.api_keys import authenticate_api_key, require_change_allowed
from core.db import session_scope
from core.errors import AuthenticationError, InvalidInputError
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


# Methods that only read: a viewer key may use them.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_admin(request: Request, session: DbSession, credentials: BearerCredentials) -> ApiKey:
    """The request's admin key: any role reads, only an operator changes (403 for a viewer).
    The key's name is the actor of what the request changes (core/audit.py)."""
    key = authenticate_api_key(session, bearer_token(credentials))
    if request.method not in READ_METHODS:
        require_change_allowed(key)
    audit.act_as(session, key.name)
    return key


AdminKey = Annotated[ApiKey, Depends(require_admin)]


def refuse_nul_in_query(request: Request) -> None:
    """A NUL byte in any query parameter is refused (422 naming it) for every route at once:
    PostgreSQL cannot store or compare text holding one, so it would otherwise end in a 500."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            field = name.replace("\x00", "")
            raise InvalidInputError(f"{field or 'query'} must not contain a NUL byte", field=field)
