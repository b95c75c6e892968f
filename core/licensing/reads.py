"""The two hot license reads: an instance's check-in and the admin read of a customer's license.

Both serve a stored license and never sign on the way (except once after a key rotation, see
`service.ensure_license`). An answer comes from the per-process `read_cache` when it holds a
fresh one; otherwise from one indexed query (check-in: the presented license, its customer's
revocation and the customer's current license, `instance_auth.check_licenses`) in a worker thread
with its own short transaction, which the answer is then cached from. The signature of the
presented license is verified on every call (cached per token, `instance_auth`), and its
revocation comes from the database or from a cache that a revocation invalidates in every API
process within a second (`read_cache` says how).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread

from core.customers.service import get_customer
from core.db import session_scope
from core.errors import AuthenticationError
from core.licensing import service as license_service
from core.licensing.instance_auth import (
    InstanceIdentity,
    StoredLicense,
    check_licenses,
    verify_instance_token,
)
from core.licensing.keys import public_pem_for, signing_key
from core.licensing.read_cache import license_read_cache


@dataclass(frozen=True, slots=True)
class LicenseAnswer:
    """A customer's current license and the public key that verifies it."""

    license: StoredLicense
    public_key: str


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
    cached = cache.get("jti:" + identity.jti)
    if cached is None or _stale_key(cached):
        cached = await anyio.to_thread.run_sync(_load_check_in, identity, cache.generation())
    if isinstance(cached, str):
        raise AuthenticationError(cached)
    return CheckIn(cached, changed=cached.license.jti != identity.jti)


async def license_of(customer_id: str) -> LicenseAnswer:
    """The customer's current license (the admin read); 404 naming customerId if none."""
    cache = license_read_cache()
    cached = cache.get("customer:" + customer_id)
    if cached is None or _stale_key(cached):
        cached = await anyio.to_thread.run_sync(_load_license_of, customer_id, cache.generation())
    return cached  # type: ignore[no-any-return]


def _stale_key(cached: LicenseAnswer | str) -> bool:
    # A rotation changes no row, so the cache does not hear of it: the first read after it
    # goes to the database, which reissues with the new key. One stat of the key file.
    return isinstance(cached, LicenseAnswer) and cached.license.kid != signing_key().kid


def _answer(session_license: StoredLicense) -> LicenseAnswer:
    return LicenseAnswer(session_license, public_pem_for(session_license.kid))


def _load_check_in(identity: InstanceIdentity, generation: int) -> LicenseAnswer | str:
    with session_scope() as session:
        check = check_licenses(session, [identity], allow_expired=True)[identity.jti]
        if check.refusal is not None:
            # Refusals are lasting (a revoked license stays revoked, an unknown jti stays
            # unknown), so they are cached too: a refused instance that retries costs nothing.
            answer: LicenseAnswer | str = check.refusal
        elif check.current is not None and check.current.kid == signing_key().kid:
            answer = _answer(check.current)
        else:
            row = license_service.license_to_serve(session, identity.customer_id)
            answer = _answer(StoredLicense.of(row))
    license_read_cache().put("jti:" + identity.jti, answer, generation)
    return answer


def _load_license_of(customer_id: str, generation: int) -> LicenseAnswer:
    with session_scope() as session:
        get_customer(session, customer_id)
        answer = _answer(StoredLicense.of(license_service.license_to_serve(session, customer_id)))
    license_read_cache().put("customer:" + customer_id, answer, generation)
    return answer
