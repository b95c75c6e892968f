"""The ingress lane: the paths that carry the load, answered without the framework.

Instances report usage and check in all day, and Stripe delivers events in bursts. Each such
request is small: verify it, store it in a group transaction (or serve a cached license),
answer. Routing through FastAPI, solving its dependencies and passing three middleware layers
cost more CPU than that work (bench/ingress.py and bench/checkin.py print the profiles), so the
application (api/app.py) hands exactly these routes to the
`IngressLane` before FastAPI sees them, and the lane does in one pass what the middlewares do
for every other route: request id, body limit, failed-authentication lockout and counting, the
JSON error format (api/errors.py), metrics and the access log.

A lane handler gets the request's headers, whole body and the application's state
(`LaneRequest`) and returns its status and JSON body, or raises as any endpoint would. FastAPI
keeps the routes' declarations, for the OpenAPI document; their endpoints call the same
handlers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from api.errors import error_answer
from api.middleware import (
    bearer_token,
    client_address,
    encoded_headers,
    header,
    record_request,
    request_id_for,
    send_json,
    too_large,
)
from core.errors import RateLimitedError
from core.logging import request_id_var
from core.rate_limit import count_failed_authentication, refused_for_failed_authentication
from core.settings import get_settings


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class LaneRequest:
    scope: Scope
    body: bytes
    # The application's state (its ingresses, made at start-up).
    state: Any

    def header(self, name: bytes) -> str | None:
        """A request header by its lower-case name, or None."""
        value = header(self.scope, name)
        return None if value is None else value.decode("latin-1")

    def bearer_token(self) -> str | None:
        return bearer_token(self.header(b"authorization"))


# The status and the JSON body: an object, or already encoded.
LaneAnswer = tuple[int, dict[str, Any] | bytes]
LaneHandler = Callable[[LaneRequest], Awaitable[LaneAnswer]]


@dataclass(frozen=True, slots=True)
class LaneRoute:
    method: str
    # The path, or its template with one {parameter} (for metrics and logs).
    template: str
    handle: LaneHandler
    # Routes that take credentials: a client locked out for failed authentications is refused
    # before its credentials are looked at. Stripe's signed webhooks are never refused.
    credentialed: bool = True
    # For a template: the paths it answers (the parameter well-formed, static siblings that
    # FastAPI serves excluded); anything else goes on to FastAPI, which validates it.
    pattern: re.Pattern[str] | None = None


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    """The client went away before its whole body arrived: nothing to answer."""


# Recorded (metrics, access log) for a request whose client went away, as nginx does.
CLIENT_CLOSED = 499


class IngressLane:
    def __init__(self, routes: Sequence[LaneRoute]) -> None:
        self._exact = {(r.method, r.template): r for r in routes if r.pattern is None}
        self._patterned = [r for r in routes if r.pattern is not None]

    def route_for(self, scope: Scope) -> LaneRoute | None:
        """The lane's route for an HTTP request, or None (FastAPI serves it)."""
        method, path = scope["method"], scope["path"]
        route = self._exact.get((method, path))
        if route is None:
            for candidate in self._patterned:
                if candidate.method == method and candidate.pattern.fullmatch(path):  # type: ignore[union-attr]
                    return candidate
        return route

    async def serve(
        self, route: LaneRoute, state: Any, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request_id = request_id_for(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            status, body, headers = await self._answer(route, state, scope, receive)
            await send_json(send, status, body, [*headers, (b"x-request-id", request_id.encode())])
        except _Disconnected:
            status = CLIENT_CLOSED
        finally:
            record_request(scope, route.template, status, time.perf_counter() - started)
            request_id_var.reset(token)

    async def _answer(
        self, route: LaneRoute, state: Any, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any] | bytes, list[tuple[bytes, bytes]]]:
        limit = get_settings().max_request_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return 413, too_large(limit), []
        client = client_address(scope)
        try:
            refused = route.credentialed and refused_for_failed_authentication(client)
            if refused:
                raise RateLimitedError(refused.retry_after)
            body = await _read_body(receive, limit)
            status, answer = await route.handle(LaneRequest(scope, body, state))
            headers: Mapping[str, str] | None = None
        except _BodyTooLarge:
            return 413, too_large(limit), []
        except _Disconnected:
            raise
        except Exception as exc:  # noqa: BLE001 - every error leaves in the JSON error format
            status, answer, headers = error_answer(exc, scope["method"], scope["path"])
        if status == 401 and route.credentialed:
            # Counted before the 401 leaves, as the middleware does for the other routes.
            await count_failed_authentication(client)
        return status, answer, encoded_headers(headers)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; over `limit` bytes (declared or not) is refused as it streams in."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _BodyTooLarge
        return body
    chunks = [body]
    received = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def answer_in_framework(handle: LaneHandler, request: Request) -> Response:
    """A lane handler answering through FastAPI: the routes' declared endpoints, served when the
    lane does not take the request (a router mounted elsewhere, a root path)."""
    status, answer = await handle(
        LaneRequest(request.scope, await request.body(), request.app.state)
    )
    if isinstance(answer, bytes):
        return Response(answer, status_code=status, media_type="application/json")
    return JSONResponse(answer, status_code=status)
