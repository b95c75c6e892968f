"""The hot routes: the paths that carry the load, and their handlers, answered without routing.

Instances report usage and check in all day, and Stripe delivers events in bursts. Each such
request is small: verify it, store it in a group transaction (or serve a cached license),
answer. Routing through FastAPI and solving its dependencies cost more CPU than that work
(bench/ingress.py and bench/checkin.py print the profiles), so the envelope (api/envelope.py),
which does for every request what every request needs, looks these routes up in `HotRoutes`
and calls their handler itself; any other request goes on to FastAPI.

A hot handler gets the request's headers, whole body and the application's state
(`LaneRequest`) and returns its status and JSON body, or raises as any endpoint would; `answer`
turns what it raised into the JSON error format (api/errors.py), the one error path of the hot
routes. FastAPI keeps the routes' declarations, for the OpenAPI document; their endpoints
(`answer_in_framework`) give the same answer through the same `answer`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Scope

from api.asgi import bearer_token, header, json_payload
from api.errors import error_answer


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
# What leaves: the status, the JSON body and the headers an error names (Retry-After), if any.
LaneReply = tuple[int, dict[str, Any] | bytes, Mapping[str, str] | None]


@dataclass(frozen=True, slots=True)
class LaneRoute:
    method: str
    # The path, or its template with one {parameter} (for metrics and logs).
    template: str
    handle: LaneHandler
    # Routes that take credentials (see core/rate_limit.py, `admit_request`).
    credentialed: bool = True
    # Stripe retries what we refuse; limiting its signed deliveries would only delay paid
    # subscriptions.
    limited: bool = True
    # For a template: the paths it answers (the parameter well-formed, static siblings that
    # FastAPI serves excluded); anything else goes on to FastAPI, which validates it.
    pattern: re.Pattern[str] | None = None


class HotRoutes:
    def __init__(self, routes: Sequence[LaneRoute]) -> None:
        self._exact = {(r.method, r.template): r for r in routes if r.pattern is None}
        self._patterned = [r for r in routes if r.pattern is not None]
        # By method too: only the route's own method goes unlimited (GET /webhooks/stripe counts).
        self.unlimited = frozenset((r.method, r.template) for r in routes if not r.limited)

    def route_for(self, scope: Scope) -> LaneRoute | None:
        """The hot route of an HTTP request, or None (FastAPI serves it)."""
        method, path = scope["method"], scope["path"]
        route = self._exact.get((method, path))
        if route is None:
            for candidate in self._patterned:
                if candidate.method == method and candidate.pattern.fullmatch(path):  # type: ignore[union-attr]
                    return candidate
        return route


async def answer(handle: LaneHandler, request: LaneRequest) -> LaneReply:
    """The hot handler's answer to `request`; for what it raised, the JSON error format (the
    one error path of the hot routes, however they are served)."""
    try:
        status, body = await handle(request)
    except Exception as exc:  # noqa: BLE001 - every error leaves in the JSON error format
        return error_answer(exc, request.scope["method"], request.scope["path"])
    return status, body, None


async def answer_in_framework(handle: LaneHandler, request: Request) -> Response:
    """A hot handler answering through FastAPI: the routes' declared endpoints, served when the
    table does not take the request (a router mounted elsewhere, a root path). The same answer,
    errors included, as the envelope sends."""
    lane_request = LaneRequest(request.scope, await request.body(), request.app.state)
    status, body, headers = await answer(handle, lane_request)
    return Response(
        json_payload(body), status_code=status, headers=headers, media_type="application/json"
    )
