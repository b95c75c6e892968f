"""Reading an ASGI request and sending a JSON answer without the framework (the envelope and
the hot routes use these)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.types import Scope, Send


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header by its lower-case name, or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, as fastapi.security.HTTPBearer
    reads them (for the hot routes, which skip its dependency)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def client_address(scope: Scope) -> str:
    # uvicorn has already replaced it with X-Forwarded-For's client when the peer is a trusted
    # proxy (FORWARDED_ALLOW_IPS); otherwise it is the peer itself.
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


def encoded_headers(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    """Response headers as ASGI sends them."""
    return [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]


def json_payload(body: dict | bytes) -> bytes:
    """A JSON answer's bytes: `body` as an object, or already encoded."""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


async def send_json(
    send: Send, status: int, body: dict | bytes, headers: list | None = None
) -> None:
    """Send a JSON answer: `body` as an object, or already encoded."""
    payload = json_payload(body)
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
