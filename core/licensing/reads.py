"""The two hot license reads: an instance's check-in and the admin read of a customer's license.

Both serve a stored license and never sign on the way (except once after a key rotation, see
`service.license_to_serve`). An answer comes from the per-process `read_cache` when it holds a
fresh one; otherwise from one indexed query (check-in: the presented license, its customer's
revocation and the customer's current license, `instance_auth.check_licenses`) in a worker thread
with its own short transaction, which the answer is then cached from. The signature of the
presented license is verified on every call (cached per token, `instance_auth`), and its
revocation comes from the database or from a cache that a revocation invalidates in every API
process within a second (`read_cache` says how).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session

from core.api_keys import authenticate_api_key
from core.customers.service import get_customer
from core.db import session_scope
from core.errors import AuthenticationError, DomainError, RevokedLicenseError
from core.licensing import service as license_service
from core.licensing.instance_auth import (
    REVOKED,
    InstanceIdentity,
    StoredLicense,
    check_licenses,
    verify_instance_token,
)
from core.licensing.keys import active_kid, public_pem_for
from core.licensing.read_cache import license_read_cache


@dataclass(frozen=True, slots=True)
class LicenseAnswer:
    """A customer's current license and the public key that verifies it."""

    license: StoredLicense
    public_key: str
    # Serialisations of this answer, kept by the API so a cached answer is encoded once.
    rendered: dict[object, bytes] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CheckInRefusal:
    """Why a presented license does not check in, and for a customer revoked now its current
    license, which says so: the signed word an instance acts on."""

    message: str
    revoked_license: str | None = None

    def error(self) -> AuthenticationError:
        if self.revoked_license is None:
            return AuthenticationError(self.message)
        return RevokedLicenseError(self.message, license=self.revoked_license)


@dataclass(frozen=True, slots=True)
class CheckIn:
    answer: LicenseAnswer
    # False when the presented license is the current one, so the instance can skip a rewrite.
    changed: bool


async def check_in(token: str | None) -> CheckIn:
    """The customer's current license for an instance presenting `token` (expired is fine, so a
    lapsed trial can pick up the license issued after paying); 401 when it is refused."""
    identity = verify_instance_token(token, allow_expired=True)
    cache = license_read_cache()
    key = "jti:" + identity.jti
    cached = cache.get(key)
    if cached is None or _stale_key(cached):
        cached = await _once(key, _load_check_in, identity, cache.generation())
    if isinstance(cached, CheckInRefusal):
        raise cached.error()
    return CheckIn(cached, changed=cached.license.jti != identity.jti)


async def license_of(customer_id: str) -> LicenseAnswer:
    """The customer's current license (the admin read); 404 naming customerId if none."""
    cache = license_read_cache()
    key = "customer:" + customer_id
    cached = cache.get(key)
    if cached is None or _stale_key(cached):
        cached = await _once(key, _load_license_of, customer_id, cache.generation())
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
        await _once(cache_key, _check_admin_key, key, cache_key, cache.generation())
    elif time.monotonic() >= refresh_after and cache_key not in _in_flight:
        # Checked again ahead of expiry, in the background: requests never queue behind the
        # check, and a revoked key still stops being accepted within ADMIN_KEY_SECONDS.
        task = asyncio.get_running_loop().create_task(
            _refresh_admin_key(key, cache_key, cache.generation())
        )
        _background.add(task)
        task.add_done_callback(_background.discard)


MISSING_ADMIN_KEY = "missing Authorization: Bearer header"
ADMIN_KEY_SECONDS = 1.0
_in_flight: dict[str, asyncio.Future[Any]] = {}
_background: set[asyncio.Task[None]] = set()


async def _refresh_admin_key(key: str, cache_key: str, generation: int) -> None:
    with contextlib.suppress(DomainError):  # refused: the entry runs out, the next read says 401
        await _once(cache_key, _check_admin_key, key, cache_key, generation)


async def _once(key: str, load: Callable[..., Any], *args: Any) -> Any:
    """`load(*args)` in a worker thread, shared by every request that misses `key` meanwhile: a
    burst of misses (start-up, just after an invalidation) costs one database read, not one per
    request."""
    loop = asyncio.get_running_loop()
    pending = _in_flight.get(key)
    if pending is not None and pending.get_loop() is loop:
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request was cancelled itself
            # The request doing the read went away (its client hung up): do it here instead.
    future: asyncio.Future[Any] = loop.create_future()
    _in_flight[key] = future
    try:
        result = await anyio.to_thread.run_sync(load, *args)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: only the requests waiting on it need it
        raise
    else:
        future.set_result(result)
        return result
    finally:
        if _in_flight.get(key) is future:
            del _in_flight[key]


def _check_admin_key(key: str, cache_key: str, generation: int) -> float:
    """Checks the key in the database; caches when to check it again (half its lifetime)."""
    with session_scope() as session:
        authenticate_api_key(session, key)
    refresh_after = time.monotonic() + ADMIN_KEY_SECONDS / 2
    license_read_cache().put(cache_key, refresh_after, generation, max_age=ADMIN_KEY_SECONDS)
    return refresh_after


def _stale_key(cached: LicenseAnswer | CheckInRefusal) -> bool:
    # A rotation changes no row, so the cache does not hear of it: the first read after it
    # goes to the database, which reissues with the new key.
    return isinstance(cached, LicenseAnswer) and cached.license.kid != active_kid()


def _answer(session_license: StoredLicense) -> LicenseAnswer:
    return LicenseAnswer(session_license, public_pem_for(session_license.kid))


def _load_check_in(identity: InstanceIdentity, generation: int) -> LicenseAnswer | CheckInRefusal:
    with session_scope() as session:
        check = check_licenses(session, [identity], allow_expired=True)[identity.jti]
        if check.refusal is not None:
            # Refusals are lasting (a revoked license stays revoked, an unknown jti stays
            # unknown), so they are cached too: a refused instance that retries costs nothing.
            revoked_license = (
                _current_revoked_license(session, identity.customer_id)
                if check.refusal == REVOKED
                else None
            )
            answer: LicenseAnswer | CheckInRefusal = CheckInRefusal(check.refusal, revoked_license)
        elif check.current is not None and check.current.kid == active_kid():
            answer = _answer(check.current)
        else:
            row = license_service.license_to_serve(session, identity.customer_id)
            answer = _answer(StoredLicense.of(row))
    license_read_cache().put("jti:" + identity.jti, answer, generation)
    return answer


def _current_revoked_license(session: Session, customer_id: str) -> str | None:
    """The customer's current license while the customer is revoked (it says so); None once the
    revocation was lifted: the presented license stays refused, but the next one is normal and
    goes only to whoever the operator hands it."""
    if get_customer(session, customer_id).license_revoked_at is None:
        return None
    return license_service.license_to_serve(session, customer_id).token


def _load_license_of(customer_id: str, generation: int) -> LicenseAnswer:
    with session_scope() as session:
        get_customer(session, customer_id)
        answer = _answer(StoredLicense.of(license_service.license_to_serve(session, customer_id)))
    license_read_cache().put("customer:" + customer_id, answer, generation)
    return answer
