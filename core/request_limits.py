"""The rate-limit step of every request, in one place: which limit a request counts against.

- A route that takes no credentials, or a request that presents none: RATE_LIMIT_UNAUTHENTICATED
  _PER_CLIENT per window and client address (behind a proxy: FORWARDED_ALLOW_IPS).
- A credentialed route with a credential: not counted per address; the usage report counts per
  customer instance instead (RATE_LIMIT_USAGE_PER_INSTANCE, with its group: `instance_refusals`).
- Failed authentications (every 401 of a credentialed route) count per client address. Over
  RATE_LIMIT_FAILED_AUTH_PER_CLIENT, the address's credentialed requests are refused (429)
  before any key lookup or RSA verification, so guessing admin keys or forging license JWTs costs
  the service nothing more; the count is shared by every API process (Redis). A credential this
  process has already answered with a 2xx (a verified license, a known admin key) is still
  served: an attacker behind the same address (a NAT, a proxy) does not lock its honest callers
  out.

The envelope (api/envelope.py) calls `admit_request` before a request is served and
`account_answer` when its status is known; the usage ingress calls `instance_refusals`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

from core.errors import RateLimitedError
from core.rate_limit import Decision, current_limiter
from core.settings import get_settings

# Digests of credentials this process answered with a 2xx, most recent last.
MAX_KNOWN_GOOD = 16_384
_known_good: dict[bytes, None] = {}


def credential_key(authorization: bytes) -> bytes:
    """What the limits remember of a presented credential (its Authorization header): a digest,
    made once per request."""
    return hashlib.blake2b(authorization, digest_size=16).digest()


def failed_auth_bucket(client_address: str) -> str:
    return f"authfail:{client_address}"


async def admit_request(
    client_address: str, credential: bytes | None, *, credentialed: bool, limited: bool = True
) -> Decision | None:
    """The refusal of a request about to be served (429), or None.

    `credential` is the request's `credential_key`, if it presented one; `credentialed` says the
    route checks credentials; `limited` is False only for routes no limit applies to (Stripe's
    deliveries).
    """
    if not limited:
        return None
    settings = get_settings()
    limiter = current_limiter()
    window = settings.rate_limit_window_seconds
    if credential is None or not credentialed:
        decision = await limiter.hit(
            f"client:{client_address}", settings.rate_limit_unauthenticated_per_client, window
        )
        return None if decision.allowed else decision
    if credential in _known_good:
        return None
    # An unknown credential from a locked-out address costs no verification. A denial this
    # process saw needs no round trip; else the count all processes share is read (not counted).
    bucket = failed_auth_bucket(client_address)
    decision = limiter.denied(bucket) or await limiter.hit(
        bucket, settings.rate_limit_failed_auth_per_client, window, amount=0
    )
    return None if decision.allowed else decision


async def account_answer(
    client_address: str, credential: bytes | None, status: int, *, credentialed: bool
) -> None:
    """What a credentialed route's answer says of its caller, recorded before it leaves: a 401
    is one more failed authentication of the address (the caller's next request sees it); a 2xx
    makes the credential known good to this process."""
    if not credentialed:
        return
    if status == 401:
        if credential is not None:
            _known_good.pop(credential, None)
        await count_failed_authentication(client_address)
    elif credential is not None and 200 <= status < 300 and credential not in _known_good:
        if len(_known_good) >= MAX_KNOWN_GOOD:
            _known_good.clear()
        _known_good[credential] = None


async def count_failed_authentication(client_address: str) -> Decision:
    """Count one failed authentication (admin key, license, any bearer) of a client address.

    The envelope calls this for every 401 it sends; call it yourself only for a failure that is
    answered some other way.
    """
    settings = get_settings()
    return await current_limiter().hit(
        failed_auth_bucket(client_address),
        settings.rate_limit_failed_auth_per_client,
        settings.rate_limit_window_seconds,
    )


@lru_cache(maxsize=8192)
def instance_bucket(customer_id: str, instance_id: str) -> str:
    """The usage limit's bucket of a customer's instance. Hashed: instance ids are the
    instance's free text (up to 255 characters). Remembered: a report asks twice (refused at
    once, then counted with its group), and instances are few."""
    name = f"{customer_id}|{instance_id}".encode("utf-8", "surrogatepass")
    return "usage:" + hashlib.sha256(name).hexdigest()[:32]


def instance_refused(bucket: str) -> RateLimitedError | None:
    """An instance this process already saw over its limit in this window (no round trip)."""
    denied = current_limiter().denied(bucket)
    return None if denied is None else RateLimitedError(denied.retry_after)


async def instance_refusals(buckets: Sequence[str]) -> list[Exception | None]:
    """RATE_LIMIT_USAGE_PER_INSTANCE per window, per instance of a customer (429 beyond): a whole
    group's counts in one Redis call, before it is stored."""
    settings = get_settings()
    decisions = await current_limiter().hit_many(
        list(buckets),
        settings.rate_limit_usage_per_instance,
        settings.rate_limit_window_seconds,
    )
    return [None if d.allowed else RateLimitedError(d.retry_after) for d in decisions]
