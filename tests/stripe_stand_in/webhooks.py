"""Webhook payloads signed as Stripe signs them (`Stripe-Signature: t=...,v1=...`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """HMAC-SHA256 of `f"{t}.{payload}"` keyed by the endpoint secret, hex encoded."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_webhook(
    event: dict[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The exact bytes Stripe would POST (pretty JSON, as Stripe sends) and their headers."""
    payload = json.dumps(event, indent=2).encode("utf-8")
    when = int(time.time()) if timestamp is None else int(timestamp)
    headers = {
        "Stripe-Signature": signature_header(payload, secret, when),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    return payload, headers


def deliver(url: str, event: dict[str, Any], secret: str, timeout: float = 10.0) -> int:
    """POST a signed event to a webhook endpoint; the HTTP status it answered."""
    payload, headers = signed_webhook(event, secret)
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
