"""The envelope: one pure-ASGI layer, outermost, that does for every HTTP request what every
request needs, whichever serves it (a hot route's handler, api/ingress_lane.py, or FastAPI):

- a request id (the caller's X-Request-ID when it is a safe token), echoed and put on log lines;
- the body limit (413, declared or streamed);
- the rate-limit step (core/request_limits.py) and the failed-authentication accounting;
- the JSON error format for what it refuses and for what a hot handler raises (api/errors.py);
- metrics and one access log line.

Pure ASGI (not BaseHTTPMiddleware) because it runs on every ingress request, the hot path.
Header and URL size caps and the header and body deadlines are the HTTP protocol's
(api/http_protocol.py): they must act before a request reaches any ASGI code.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.asgi import client_address, encoded_headers, header, send_json
from api.errors import error_body
from api.ingress_lane import HotRoutes, LaneRequest, LaneRoute, answer
from core.errors import RateLimitedError
from core.logging import request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from core.request_limits import (
    account_answer,
    admit_request,
    admitted_at_once,
    answer_tells,
    credential_key,
)
from core.settings import get_settings

log = logging.getLogger("api.access")
_request_metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}

REQUEST_ID_HEADER = b"x-request-id"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The console's sign-in form takes an API key in its body: a client locked out for failed
# authentications is refused there too, before the key is looked up.
SIGN_IN = ("POST", "/console/login")
# Recorded (metrics, access log) for a request whose client went away, as nginx does.
CLIENT_CLOSED = 499
# Set in the scope by the HTTP protocol when it refused a request the app was serving (408: its
# body came too slowly): the status recorded (api/http_protocol_httptools.py).
REFUSED_STATUS = "billing.refused_status"
# Remembered answers to "does this path take credentials" (paths carry ids: bounded).
_MAX_REMEMBERED_PATHS = 4096


class BodyTooLarge(HTTPException):
    """Raised by the body's `receive` past the limit: inside FastAPI its HTTP error handler
    answers it (api/errors.py), for a hot route the envelope does."""

    field = "body"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class ClientDisconnected(Exception):
    """The client went away before its whole body arrived: nothing to answer."""


class Envelope:
    """Wraps `app` (FastAPI). `hot` routes are answered by their handlers with `state` (the
    application's); `openapi` gives the app's OpenAPI document, to tell which paths take
    credentials."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hot: HotRoutes | None = None,
        state: Any = None,
        openapi: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.hot = hot or HotRoutes([])
        self.state = state
        self._openapi = openapi
        self._operations: list[tuple[re.Pattern[str], set[str], set[str]]] | None = None
        self._credentialed_paths: dict[tuple[str, str], bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        route = self.hot.route_for(scope)
        exchange = _Exchange(send, request_id.encode(), client_address(scope))
        try:
            await self._serve(route, scope, receive, exchange)
        except ClientDisconnected:
            exchange.status = CLIENT_CLOSED
        finally:
            if route is not None:
                template = route.template
            else:
                template = getattr(scope.get("route"), "path", None) or "unmatched"
            status = scope.get(REFUSED_STATUS, exchange.status)
            record_request(scope, template, status, time.perf_counter() - started)
            request_id_var.reset(token)

    async def _serve(
        self, route: LaneRoute | None, scope: Scope, receive: Receive, exchange: _Exchange
    ) -> None:
        limit = get_settings().max_request_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await exchange.json(413, too_large(limit))
            return
        if route is not None:
            credentialed = exchange.credentialed = route.credentialed
            limited = route.limited
            sign_in = False
        else:
            credentialed = exchange.credentialed = self._takes_credentials(scope)
            key = (scope["method"], scope["path"])
            limited = key not in self.hot.unlimited
            sign_in = key == SIGN_IN
        if credentialed:
            authorization = header(scope, b"authorization")
            if authorization is not None:
                exchange.credential = credential_key(authorization)
        # A known-good credential (nearly every hot request) is admitted without a round trip.
        credential = exchange.credential
        if not admitted_at_once(
            credential, credentialed=credentialed, limited=limited, sign_in=sign_in
        ):
            refused = await admit_request(
                exchange.client,
                credential,
                credentialed=credentialed,
                limited=limited,
                sign_in=sign_in,
            )
            if refused is not None:
                refusal = RateLimitedError(refused.retry_after)
                body = error_body(refusal.code, refusal.message)
                await exchange.json(429, body, encoded_headers(refusal.headers))
                return
        try:
            if route is None:
                await self.app(scope, _limited(receive, limit), exchange.send)
            else:
                request = LaneRequest(scope, await _read_body(receive, limit), self.state)
                status, body, headers = await answer(route.handle, request)
                await exchange.json(status, body, encoded_headers(headers))
        except BodyTooLarge:
            if not exchange.started:
                await exchange.json(413, too_large(limit))

    def _takes_credentials(self, scope: Scope) -> bool:
        """Whether the route a request is for checks credentials (its OpenAPI operation names a
        security requirement: a security dependency, or one declared). An unknown path checks
        none: an Authorization header on it proves nothing, so it counts against its address
        like any other."""
        key = (scope["method"], scope["path"])
        known = self._credentialed_paths.get(key)
        if known is None:
            known = self._operation_is_secured(*key)
            if len(self._credentialed_paths) >= _MAX_REMEMBERED_PATHS:
                self._credentialed_paths.clear()
            self._credentialed_paths[key] = known
        return known

    def _operation_is_secured(self, method: str, path: str) -> bool:
        if self._operations is None:
            self._operations = _secured_operations(self._openapi() if self._openapi else {})
        wanted = method.lower()
        for pattern, methods, secured in self._operations:
            # A path whose operations lack this method is a partial match: the router goes on
            # to the next one (GET /api/usage/report is served by GET /api/usage/{customer_id}).
            if wanted in methods and pattern.fullmatch(path):
                return wanted in secured
        return False


def _secured_operations(
    document: dict[str, Any],
) -> list[tuple[re.Pattern[str], set[str], set[str]]]:
    """Per path of the OpenAPI document, its pattern, its methods and the methods whose
    operation requires security; static paths first (/api/licenses/public-key before
    /api/licenses/{customerId})."""
    operations = []
    for template, item in document.get("paths", {}).items():
        parts = re.split(r"\{[^}]+\}", template)
        pattern = re.compile("[^/]+".join(re.escape(part) for part in parts))
        methods = {method for method in item if method != "parameters"}
        secured = {method for method, operation in item.items() if operation.get("security")}
        operations.append((pattern, methods, secured, len(parts) > 1))
    operations.sort(key=lambda operation: operation[3])
    return [(pattern, methods, secured) for pattern, methods, secured, _ in operations]


class _Exchange:
    """One request's answer on its way out: its status, and the request id on it. A 401, or a
    2xx of a credentialed route, is accounted for before it leaves (the caller's next request,
    on this connection or a parallel one, already sees it)."""

    __slots__ = (
        "_send",
        "_request_id",
        "client",
        "credential",
        "credentialed",
        "status",
        "started",
    )

    def __init__(self, send: Send, request_id: bytes, client: str) -> None:
        self._send = send
        self._request_id = request_id
        self.client = client
        self.credential: bytes | None = None
        self.credentialed = False
        self.status = 500
        self.started = False

    async def send(self, message: Message) -> None:
        """The framework's `send`."""
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [
                *message.get("headers", ()),
                (REQUEST_ID_HEADER, self._request_id),
            ]
            if self._starting(status):
                await account_answer(self.client, self.credential, status)
        await self._send(message)

    async def json(self, status: int, body: dict | bytes, headers: list | None = None) -> None:
        """Send a JSON answer (the envelope's own, or a hot handler's)."""
        if self._starting(status):
            await account_answer(self.client, self.credential, status)
        await send_json(
            self._send, status, body, [*(headers or ()), (REQUEST_ID_HEADER, self._request_id)]
        )

    def _starting(self, status: int) -> bool:
        """Note that the answer starts, with `status`; whether the limits must hear of it
        before it leaves (`account_answer`)."""
        self.status = status
        self.started = True
        return answer_tells(self.credential, status)


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing a body over `limit` bytes (declared or not) as it streams in."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counting_receive


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; over `limit` bytes (declared or not) is refused as it streams in."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(limit)
        return body
    chunks = [body]
    received = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> dict:
    return error_body("payload_too_large", f"request body is larger than {limit} bytes", "body")


def request_id_for(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a safe token, else a new one."""
    incoming = header(scope, REQUEST_ID_HEADER)
    if incoming is not None:
        text = incoming.decode("latin-1")
        if SAFE_REQUEST_ID.match(text):
            return text
    return _new_request_id()


def _new_request_id() -> str:
    # 32 hex digits: this process's random half, then its count of requests. Unique like a
    # uuid4, without reading the system's randomness and building a UUID per request.
    return f"{_request_ids[0]}{next(_request_ids[1]):016x}"


def _draw_request_ids() -> None:
    # Per process: a forked child (a uvicorn worker) draws its own half.
    _request_ids[:] = [uuid.uuid4().hex[:16], itertools.count()]


_request_ids: list[Any] = []
_draw_request_ids()
os.register_at_fork(after_in_child=_draw_request_ids)


def record_refusal(method: str, path: str, status: int, elapsed: float) -> None:
    """Count and log a request the HTTP protocol refused before any app saw it (408, 414, 431),
    with a request id of its own, on route "unmatched"."""
    scope: Scope = {"method": method, "path": path, "headers": []}
    token = request_id_var.set(request_id_for(scope))
    try:
        record_request(scope, "unmatched", status, elapsed)
    finally:
        request_id_var.reset(token)


def record_request(scope: Scope, template: str, status: int, elapsed: float) -> None:
    """Count, time and log one answered request (once, with its request id)."""
    method = scope["method"]
    key = (method, template, status)
    metrics = _request_metrics.get(key)
    if metrics is None:
        # Labelled series looked up once, not on every request (routes and statuses are few).
        metrics = (
            HTTP_REQUESTS.labels(method, template, str(status)),
            HTTP_LATENCY.labels(method, template),
        )
        _request_metrics[key] = metrics
    metrics[0].inc()
    metrics[1].observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s %s",
            method,
            template,
            status,
            extra={
                "method": method,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
