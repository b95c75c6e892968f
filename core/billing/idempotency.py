"""Idempotency keys for Stripe calls: the same key for the same request (create once), or a
fresh one for a call that may rightly happen again."""

from __future__ import annotations

import hashlib
import json
import uuid


def idempotency_key(operation: str, *parts: object) -> str:
    """A key that is the same for the same operation on the same input, and only then.

    Used for "create once" calls (a customer, a product, a price): a retry after a crash gets
    Stripe's first answer back instead of a duplicate. Parameters are hashed into the key, so a
    changed request never collides with Stripe's "same key, other parameters" error.
    """
    digest = hashlib.sha256(
        json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()[:32]
    return f"zemfyre-{operation}-{digest}"


def unique_idempotency_key(operation: str) -> str:
    """A fresh key for a call that may rightly happen again (a new checkout, a plan change);
    the SDK's own retries of that one call reuse it."""
    return f"zemfyre-{operation}-{uuid.uuid4().hex}"
