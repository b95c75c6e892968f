"""Pure ASGI middleware: request ids, metrics and access logs, body size limit, rate limits.

Pure ASGI (not BaseHTTPMiddleware) because these run on every ingress request, the hot path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
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

REQUEST_ID_HEADER = b"x-request-id"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
USAGE_REPORT_PATH = "/api/usage/report"
# Stripe retries what we refuse; limiting its deliveries would only delay paid subscriptions.
NEVER_LIMITED_PREFIXES = ("/webhooks/stripe",)
# Routes that check credentials. Anywhere else an Authorization header proves nothing, so the
# request counts against its client address like any other (a junk bearer on /readyz).
CREDENTIALED_PREFIXES = ("/api/", "/metrics")


async def _send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
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


def _header(scope: Scope, name: bytes) -> bytes | None:
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


class RequestContextMiddleware(_HttpMiddleware):
    """Gives each request an id (echoed in X-Request-ID), counts it and logs it once."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = (_header(scope, REQUEST_ID_HEADER) or b"").decode("latin-1")
        request_id = incoming if SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
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
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], template).observe(elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                template,
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


class BodySizeLimitMiddleware(_HttpMiddleware):
    """Refuses bodies over the limit with 413, whether or not they declare a length."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = get_settings().max_request_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, _too_large(limit))
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
                await _send_json(send, 413, _too_large(limit))


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> dict:
    return error_body("payload_too_large", f"request body is larger than {limit} bytes", "body")


class RateLimitMiddleware(_HttpMiddleware):
    """429 with Retry-After, counted per client address (behind a proxy: FORWARDED_ALLOW_IPS):

    - requests without credentials, or to routes that take none: per client address;
    - failed authentications (every 401): per client address; over the limit, the client's
      credentialed requests are refused before any key lookup or signature check;
    - usage reports: per license and instance.
    """

    def passes_through(self, scope: Scope) -> bool:
        return bool(scope["path"].startswith(NEVER_LIMITED_PREFIXES))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        window = settings.rate_limit_window_seconds
        client = _client_address(scope)
        authorization = _header(scope, b"authorization")
        is_usage_report = scope["path"] == USAGE_REPORT_PATH and scope["method"] == "POST"
        if authorization is not None and scope["path"].startswith(CREDENTIALED_PREFIXES):
            decision = refused_for_failed_authentication(client)
            if decision is None and is_usage_report:
                body, receive = await _buffer_body(receive)
                bucket = "usage:" + _instance_key(authorization, body)
                decision = await current_limiter().hit(
                    bucket, settings.rate_limit_usage_per_instance, window
                )
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


def _client_address(scope: Scope) -> str:
    # uvicorn has already replaced it with X-Forwarded-For's client when the peer is a trusted
    # proxy (FORWARDED_ALLOW_IPS); otherwise it is the peer itself.
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


async def _refuse(send: Send, decision: Decision) -> None:
    await _send_json(
        send,
        429,
        error_body("rate_limited", f"too many requests; retry in {decision.retry_after}s"),
        headers=[(b"retry-after", str(decision.retry_after).encode())],
    )


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole (small, size-limited) body and hand the app a receive that replays it."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _instance_key(authorization: bytes, body: bytes) -> str:
    """One bucket per license and instance; the token itself is hashed, never kept."""
    instance = ""
    try:
        parsed: Any = json.loads(body)
        if isinstance(parsed, dict):
            instance = str(parsed.get("instanceId") or parsed.get("instance_id") or "")[:255]
    except (ValueError, RecursionError):
        # Not JSON, or thousands of nested brackets: the endpoint answers that with a 4xx; the
        # bucket is then simply the license's.
        pass
    # surrogatepass: a lone surrogate (valid JSON escape, invalid UTF-8) still names a bucket.
    key = authorization + b"|" + instance.encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:32]


def install_middleware(app: Any) -> None:
    # Added last runs first: context (ids, metrics, logs) wraps everything else.
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)
