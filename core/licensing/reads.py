"""The two hot license reads: an instance's check-in and the admin read of a customer's license.

Both serve a stored license and never sign on the way (except once after a key rotation, see
`service.license_to_serve`). Check-in judges the presented license by the one license lookup
(core/licensing/lookup.py: cached per process, a miss read once for all who ask meanwhile) and
serves the customer's current license it found; the admin read keeps the customer's current
license in the same cache. A license change reaches every API process within
read_cache.TRUST_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass

import jwt

from core.api_keys import authenticate_api_key
from core.customers.service import get_customer
from core.db import session_scope
from core.errors import AuthenticationError, DomainError, RevokedLicenseError
from core.licensing import lookup, service
from core.licensing.instance_auth import REVOKED, verify_instance_token
from core.licensing.keys import active_kid
from core.licensing.lookup import (
    LicenseAnswer,
    LicenseFacts,
    StoredLicense,
    license_refusal,
    look_up_license,
    single_flight,
)
from core.licensing.read_cache import license_read_cache

__all__ = ["CheckIn", "LicenseAnswer", "authenticate_admin", "check_in", "license_of"]


@dataclass(frozen=True, slots=True)
class CheckIn:
    answer: LicenseAnswer
    # False when the presented license is the current one, so the instance can skip a rewrite.
    changed: bool


async def check_in(token: str | None) -> CheckIn:
    """The customer's current license for an instance presenting `token` (expired is fine, so a
    lapsed trial can pick up the license issued after paying); 401 when it is refused."""
    identity = verify_instance_token(token, allow_expired=True)
    facts = await look_up_license(identity)
    refusal = license_refusal(identity, facts, allow_expired=True)
    if refusal is not None:
        raise _check_in_refused(refusal, facts)
    answer = facts.current
    if answer is None or _stale_key(answer):
        answer = await license_of(identity.customer_id)  # signed anew with the active key
    return CheckIn(answer, changed=answer.license.jti != identity.jti)


def _check_in_refused(refusal: str, facts: LicenseFacts | None) -> AuthenticationError:
    """The 401 for a refused check-in. For a customer revoked now it carries the customer's
    current license, which says so: the signed word an instance stops on (the words of a 401
    prove nothing; anyone on the network can write them). Not once the revocation was lifted:
    the presented license stays refused, and the next, normal one goes only to whoever the
    operator hands it."""
    current = facts.current if facts is not None else None
    if refusal == REVOKED and current is not None and _says_revoked(current.license.token):
        return RevokedLicenseError(refusal, license=current.license.token)
    return AuthenticationError(refusal)


def _says_revoked(token: str) -> bool:
    # The service's own stored token: its claims are read, not verified (no RSA work).
    claims = jwt.decode(token, options={"verify_signature": False})
    revocation = claims.get("revocation")
    return isinstance(revocation, dict) and revocation.get("revoked") is True


async def license_of(customer_id: str) -> LicenseAnswer:
    """The customer's current license (the admin read); 404 naming customerId if none."""
    cache = license_read_cache()
    key = "customer:" + customer_id
    cached = cache.get(key)
    if cached is None or _stale_key(cached):
        cached = await single_flight(key, _load_license_of, customer_id, cache.generation())
    return cached  # type: ignore[no-any-return]


async def authenticate_admin(key: str | None) -> None:
    """An admin API key for the admin license read, checked in the database at most once per
    ADMIN_KEY_SECONDS per key and process: a revoked key is refused within that time. 401 else.

    The other admin routes check the key on every request (`api.deps.require_admin`); this read
    is polled by operators' tooling and is held to the check-in's speed budget.
    """
    if not key:
        raise AuthenticationError(MISSING_ADMIN_KEY)
    cache = license_read_cache()
    cache_key = "admin:" + hashlib.sha256(key.encode()).hexdigest()
    refresh_after = cache.get(cache_key)
    if refresh_after is None:
        await single_flight(cache_key, _check_admin_key, key, cache_key, cache.generation())
    elif time.monotonic() >= refresh_after and not lookup.reading(cache_key):
        # Checked again ahead of expiry, in the background: requests never queue behind the
        # check, and a revoked key still stops being accepted within ADMIN_KEY_SECONDS.
        task = asyncio.get_running_loop().create_task(
            _refresh_admin_key(key, cache_key, cache.generation())
        )
        _background.add(task)
        task.add_done_callback(_background.discard)


MISSING_ADMIN_KEY = "missing Authorization: Bearer header"
ADMIN_KEY_SECONDS = 1.0
_background: set[asyncio.Task[None]] = set()


async def _refresh_admin_key(key: str, cache_key: str, generation: int) -> None:
    with contextlib.suppress(DomainError):  # refused: the entry runs out, the next read says 401
        await single_flight(cache_key, _check_admin_key, key, cache_key, generation)


def _check_admin_key(key: str, cache_key: str, generation: int) -> float:
    """Checks the key in the database; caches when to check it again (half its lifetime)."""
    with session_scope() as session:
        authenticate_api_key(session, key)
    refresh_after = time.monotonic() + ADMIN_KEY_SECONDS / 2
    license_read_cache().put(cache_key, refresh_after, generation, max_age=ADMIN_KEY_SECONDS)
    return refresh_after


def _stale_key(answer: LicenseAnswer) -> bool:
    # A rotation changes no row, so the cache does not hear of it: the first read after it
    # goes to the database, which reissues with the new key.
    return answer.license.kid != active_kid()


def _load_license_of(customer_id: str, generation: int) -> LicenseAnswer:
    with session_scope() as session:
        get_customer(session, customer_id)
        answer = LicenseAnswer.of(StoredLicense.of(service.license_to_serve(session, customer_id)))
    license_read_cache().put("customer:" + customer_id, answer, generation)
    return answer
