"""Every error leaves as `{"error": {"code", "message", "field"?}}` with its status."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
import starlette.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic.alias_generators import to_camel
from sqlalchemy.exc import DBAPIError, OperationalError

from core.db import is_unavailable_sqlstate
from core.errors import DomainError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _field_name(location: tuple[Any, ...], kind: str | None = None) -> str:
    # ("body", "metrics", "activeDevices") -> "metrics.activeDevices"; the "body"/"query" is noise.
    if kind == "json_invalid":
        # Its location is ("body", <character offset>): the offset is no field name.
        return "body"
    if location and location[0] == "path":
        # Path parameters are snake_case in Python; the API speaks camelCase (customerId).
        return ".".join(to_camel(str(part)) for part in location[1:]) or "path"
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or (str(location[-1]) if location else "body")


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _field_name(tuple(first.get("loc", ())), first.get("type"))
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    body = error_body("validation_error", message, field)
    body["error"]["details"] = [
        {"field": _field_name(tuple(e.get("loc", ())), e.get("type")), "message": e.get("msg")}
        for e in errors
    ]
    return JSONResponse(body, status_code=422)


async def _http_error(_: Request, exc: starlette.exceptions.HTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's answer to a JSON body that is not UTF-8; invalid JSON is already a 422
        # naming the body, and a client should not have to handle the two differently.
        return error_response(422, "validation_error", "body: not valid UTF-8 JSON", "body")
    code = HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    field = getattr(exc, "field", None)
    headers = getattr(exc, "headers", None)
    return error_response(exc.status_code, code, message, field, headers=headers)


Answer = tuple[int, dict[str, Any], dict[str, str] | None]


def _database_unavailable(exc: DBAPIError) -> bool:
    # Connection lost or refused, a lock not granted within DATABASE_LOCK_TIMEOUT_MS, a statement
    # cancelled by DATABASE_STATEMENT_TIMEOUT_MS, a read-only or exhausted server: the request was
    # not stored, the caller should retry.
    return (
        exc.connection_invalidated
        or isinstance(exc, OperationalError)
        # psycopg2 raises most of those as OperationalError but a read-only transaction as
        # InternalError; SQLAlchemy over asyncpg raises them all as plain DBAPIError.
        or is_unavailable_sqlstate(getattr(exc.orig, "pgcode", None))
        or is_unavailable_sqlstate(getattr(exc.orig, "sqlstate", None))
    )


def error_answer(exc: Exception, method: str, path: str) -> Answer:
    """Status, JSON body and headers for an exception a route raised (every route alike)."""
    if isinstance(exc, DomainError):
        # A domain error may tell the client when to come back (rate limits, Stripe's).
        body = error_body(exc.code, exc.message, exc.field)
        body.update(getattr(exc, "answer_fields", None) or {})
        return exc.status_code, body, getattr(exc, "headers", None)
    if isinstance(exc, DBAPIError) and _database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", method, path, exc)
        message = "the database is unavailable; retry later"
        return 503, error_body("unavailable", message), {"Retry-After": "5"}
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        # Every pooled connection stayed busy for DATABASE_POOL_TIMEOUT_SECONDS: overload.
        log.warning("database pool exhausted on %s %s: %s", method, path, exc)
        message = "the database is busy; retry later"
        return 503, error_body("unavailable", message), {"Retry-After": "2"}
    # A bug, not bad input: log it whole, answer without internals.
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return 500, error_body("internal_error", "internal server error"), None


async def _error(request: Request, exc: Exception) -> JSONResponse:
    status, body, headers = error_answer(exc, request.method, request.url.path)
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(starlette.exceptions.HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _error)
    app.add_exception_handler(DBAPIError, _error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _error)
    app.add_exception_handler(Exception, _error)
