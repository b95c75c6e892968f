"""The rate-limit step of every request, in one place: which limit a request counts against.

- A route that takes no credentials, or a request that presents none: RATE_LIMIT_UNAUTHENTICATED
  _PER_CLIENT per window and client address (behind a proxy: FORWARDED_ALLOW_IPS).
- A credentialed route with a known-good credential: not counted per address; the usage report
  counts per customer instance and per license instead (RATE_LIMIT_USAGE_PER_INSTANCE and
  _PER_LICENSE, with its group: `usage_refusals`).
- Failed authentications (every 401) count per client address. Over
  RATE_LIMIT_FAILED_AUTH_PER_CLIENT, the address's credentialed requests are refused (429)
  before any key lookup or RSA verification, so guessing admin keys or forging license JWTs costs
  the service nothing more; the count is shared by every API process (Redis). A credential this
  process has already answered with a 2xx (a verified license, a known admin key) is still
  served: an attacker behind the same address (a NAT, a proxy) does not lock its honest callers
  out. What is remembered is the token the verifier saw (scheme case and spaces do not make new
  entries), least recently used evicted; every process notes it in Redis for KNOWN_GOOD_SECONDS,
  read only for a request from a locked-out address (a restarted or second process spares it).
- A credentialed route with a credential not known good also counts against its address's
  RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT (in the same Redis call as the lockout's read): junk
  bearers are limited like no bearer.

The envelope (api/envelope.py) asks `admitted_at_once`, else awaits `admit_request`, before a
request is served, and awaits `account_answer` when its status `answer_tells` something; the
usage ingress calls `usage_refusals`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

from core.errors import RateLimitedError
from core.rate_limit import Decision, current_limiter
from core.settings import get_settings

# Digests of credentials this process answered with a 2xx, most recent last.
MAX_KNOWN_GOOD = 16_384
_known_good: OrderedDict[bytes, None] = OrderedDict()
# How long every process spares a credential one of them answered with a 2xx.
KNOWN_GOOD_SECONDS = 86_400


def credential_key(authorization: bytes) -> bytes:
    """What the limits remember of a presented credential: a digest of the bearer token as the
    verifiers read it (scheme in any case, surrounding spaces stripped). Variants of one header
    are one entry: they cannot flood the known-good set. An instance presents the same header
    all day: its digest is made once (the last MAX_KNOWN_GOOD headers seen)."""
    key = _digests.get(authorization)
    if key is None:
        scheme, _, token = authorization.partition(b" ")
        presented = token.strip() if scheme.lower() == b"bearer" else authorization
        key = hashlib.blake2b(presented, digest_size=16).digest()
        if len(_digests) >= MAX_KNOWN_GOOD:
            _digests.clear()
        _digests[authorization] = key
    return key


_digests: dict[bytes, bytes] = {}


def _shared_name(credential: bytes) -> str:
    return "knowngood:" + credential.hex()


def failed_auth_bucket(client_address: str) -> str:
    return f"authfail:{client_address}"


async def admit_request(
    client_address: str,
    credential: bytes | None,
    *,
    credentialed: bool,
    limited: bool = True,
    sign_in: bool = False,
) -> Decision | None:
    """The refusal of a request about to be served (429), or None.

    `credential` is the request's `credential_key`, if it presented one; `credentialed` says the
    route checks credentials; `limited` is False only for routes no limit applies to (Stripe's
    deliveries); `sign_in` marks a form that takes a credential in its body (the console's).
    """
    if admitted_at_once(credential, credentialed=credentialed, limited=limited, sign_in=sign_in):
        return None
    settings = get_settings()
    limiter = current_limiter()
    window = settings.rate_limit_window_seconds
    if not sign_in and (credential is None or not credentialed):
        decision = await limiter.hit(
            f"client:{client_address}", settings.rate_limit_unauthenticated_per_client, window
        )
        return None if decision.allowed else decision
    # An unknown credential from a locked-out address costs no verification. A denial this
    # process saw needs no round trip; else the count all processes share is read (not counted),
    # with the address's hit (a bearer not known good is limited like none) in the same call.
    bucket = failed_auth_bucket(client_address)
    refusal = limiter.denied(bucket)
    if refusal is None:
        lockout, per_client = await asyncio.gather(
            limiter.hit(bucket, settings.rate_limit_failed_auth_per_client, window, amount=0),
            limiter.hit(
                f"client:{client_address}", settings.rate_limit_unauthenticated_per_client, window
            ),
        )
        refusal = lockout if not lockout.allowed else per_client
    if refusal.allowed:
        return None
    # Refused: a credential another process (or this one before a restart) found good is
    # still served; only this refused address pays the read.
    if credential is not None and await limiter.remembers(_shared_name(credential)):
        _remember_locally(credential)
        return None
    return refusal


def admitted_at_once(
    credential: bytes | None, *, credentialed: bool, limited: bool = True, sign_in: bool = False
) -> bool:
    """Whether `admit_request` admits a request without counting it anywhere: a route no limit
    applies to, or a credential this process has already seen succeed presented where
    credentials are checked. No round trip: the envelope asks this first, on every request."""
    if not limited:
        return True
    if credential is not None and (credentialed or sign_in) and credential in _known_good:
        _known_good.move_to_end(credential)
        return True
    return False


def _remember_locally(credential: bytes) -> None:
    _known_good[credential] = None
    _known_good.move_to_end(credential)
    while len(_known_good) > MAX_KNOWN_GOOD:
        _known_good.popitem(last=False)


def answer_tells(credential: bytes | None, status: int) -> bool:
    """Whether an answer tells the limits something new (`account_answer` has work): a 401, or
    a 2xx for a credential not yet known good. No round trip: asked of every answer."""
    if status == 401:
        return True
    return credential is not None and 200 <= status < 300 and credential not in _known_good


async def account_answer(client_address: str, credential: bytes | None, status: int) -> None:
    """What an answer says of its caller, recorded before it leaves: a 401 is one more failed
    authentication of the address (the caller's next request sees it); a 2xx makes the
    credential it presented to a credentialed route (None otherwise) known good to this
    process."""
    if status == 401:
        if credential is not None and _known_good.pop(credential, 0) is None:
            await current_limiter().forget(_shared_name(credential))
        await count_failed_authentication(client_address)
    elif credential is not None and 200 <= status < 300 and credential not in _known_good:
        _remember_locally(credential)
        await current_limiter().remember(_shared_name(credential), KNOWN_GOOD_SECONDS)


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


def license_bucket(customer_id: str) -> str:
    """The usage limit's bucket of all of a customer's licenses, whatever instances they name."""
    return "usage-license:" + customer_id


def usage_refused(customer_id: str, instance_id: str) -> RateLimitedError | None:
    """An instance or license this process already saw over its limit in this window (no round
    trip)."""
    limiter = current_limiter()
    if not limiter.denies_any():
        return None
    denied = limiter.denied(instance_bucket(customer_id, instance_id)) or limiter.denied(
        license_bucket(customer_id)
    )
    return None if denied is None else RateLimitedError(denied.retry_after)


async def usage_refusals(reports: Sequence[tuple[str, str]]) -> list[Exception | None]:
    """RATE_LIMIT_USAGE_PER_INSTANCE per window per instance of a customer, and
    RATE_LIMIT_USAGE_PER_LICENSE per window for all of the customer's licenses (429 beyond
    either), for a group of (customer id, instance id): the whole group's counts in one Redis
    call, before it is stored."""
    settings = get_settings()
    count = len(reports)
    buckets = [instance_bucket(customer_id, instance_id) for customer_id, instance_id in reports]
    buckets += [license_bucket(customer_id) for customer_id, _ in reports]
    limits = [settings.rate_limit_usage_per_instance] * count
    limits += [settings.rate_limit_usage_per_license] * count
    decisions = await current_limiter().hit_many(
        buckets, limits, settings.rate_limit_window_seconds
    )
    return [
        None
        if instance.allowed and license.allowed
        else RateLimitedError(max(instance.retry_after, license.retry_after))
        for instance, license in zip(decisions[:count], decisions[count:], strict=True)
    ]
