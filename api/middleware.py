"""Pure ASGI middleware: request ids, metrics and access logs, body size limit, rate limits.

Pure ASGI (not BaseHTTPMiddleware) because these run on every ingress request, the hot path.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from core.errors import RateLimitedError
from core.logging import request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from core.rate_limit import (
    Decision,
    count_failed_authentication,
    current_limiter,
    refused_for_failed_authentication,
)
from core.settings import get_settings

log = logging.getLogger("api.access")
_request_metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}

REQUEST_ID_HEADER = b"x-request-id"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Stripe retries what we refuse; limiting its deliveries would only delay paid subscriptions.
NEVER_LIMITED_PREFIXES = ("/webhooks/stripe",)
# Routes that check credentials. Anywhere else an Authorization header proves nothing, so the
# request counts against its client address like any other (a junk bearer on /readyz).
CREDENTIALED_PREFIXES = ("/api/", "/metrics")
# The console's sign-in form takes an API key in its body: a client locked out for failed
# authentications is refused there too, before the key is looked up.
CONSOLE_SIGN_IN = "/console/login"


async def send_json(
    send: Send, status: int, body: dict | bytes, headers: list | None = None
) -> None:
    """Send a JSON answer: `body` as an object, or already encoded."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, as fastapi.security.HTTPBearer
    reads them (for the hot paths, which skip its dependency)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


class _HttpMiddleware:
    """Acts on HTTP requests (`handle`); anything else, or what `passes_through`, goes straight
    on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.passes_through(scope):
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    def passes_through(self, scope: Scope) -> bool:
        return False

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def request_id_for(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a safe token, else a new one."""
    incoming = (header(scope, REQUEST_ID_HEADER) or b"").decode("latin-1")
    return incoming if SAFE_REQUEST_ID.match(incoming) else _new_request_id()


def _new_request_id() -> str:
    # 32 hex digits: this process's random half, then its count of requests. Unique like a
    # uuid4, without reading the system's randomness and building a UUID per request.
    pid = os.getpid()
    if _request_ids[0] != pid:  # a forked child draws its own half
        _request_ids[:] = [pid, uuid.uuid4().hex[:16], itertools.count()]
    return f"{_request_ids[1]}{next(_request_ids[2]):016x}"


_request_ids: list[Any] = [None, "", None]


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


class RequestContextMiddleware(_HttpMiddleware):
    """Gives each request an id (echoed in X-Request-ID), counts it and logs it once."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_for(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            record_request(scope, template, status, time.perf_counter() - started)
            request_id_var.reset(token)


class BodySizeLimitMiddleware(_HttpMiddleware):
    """Refuses bodies over the limit with 413, whether or not they declare a length."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = get_settings().max_request_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, too_large(limit))
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await send_json(send, 413, too_large(limit))


class _BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> dict:
    return error_body("payload_too_large", f"request body is larger than {limit} bytes", "body")


class RateLimitMiddleware(_HttpMiddleware):
    """429 with Retry-After, counted per client address (behind a proxy: FORWARDED_ALLOW_IPS):

    - requests without credentials, or to routes that take none: per client address;
    - failed authentications (every 401): per client address; over the limit, the client's
      credentialed requests are refused before any key lookup or signature check;
    - usage reports (answered in the ingress lane, not here): per customer instance, counted by
      their group (api/usage.py, `Ingress.start(admit=...)`).
    """

    def passes_through(self, scope: Scope) -> bool:
        return bool(scope["path"].startswith(NEVER_LIMITED_PREFIXES))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        window = settings.rate_limit_window_seconds
        client = client_address(scope)
        authorization = header(scope, b"authorization")
        decision: Decision | None
        if (authorization is not None and scope["path"].startswith(CREDENTIALED_PREFIXES)) or (
            scope["method"] == "POST" and scope["path"] == CONSOLE_SIGN_IN
        ):
            # Credentialed requests are limited by what they authenticate as (usage reports per
            # instance, api/usage.py), once the client is not locked out for failed ones.
            decision = refused_for_failed_authentication(client)
        else:
            decision = await current_limiter().hit(
                f"client:{client}", settings.rate_limit_unauthenticated_per_client, window
            )
        if decision is not None and not decision.allowed:
            await _refuse(send, decision)
            return

        async def counting_send(message: Message) -> None:
            # Counted before the 401 leaves: the client's next request (same connection, or a
            # parallel one) already sees the failure, and a guesser waits for the count.
            if message["type"] == "http.response.start" and message["status"] == 401:
                await count_failed_authentication(client)
            await send(message)

        await self.app(scope, receive, counting_send)


def client_address(scope: Scope) -> str:
    # uvicorn has already replaced it with X-Forwarded-For's client when the peer is a trusted
    # proxy (FORWARDED_ALLOW_IPS); otherwise it is the peer itself.
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


async def _refuse(send: Send, decision: Decision) -> None:
    refusal = RateLimitedError(decision.retry_after)
    body = error_body(refusal.code, refusal.message)
    await send_json(send, 429, body, headers=encoded_headers(refusal.headers))


def encoded_headers(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    """Response headers as ASGI sends them."""
    return [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]


def install_middleware(app: Any) -> None:
    # Added last runs first: context (ids, metrics, logs) wraps everything else.
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)
