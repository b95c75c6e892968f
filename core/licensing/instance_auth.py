"""Verifying the license an instance presents: the part of its authentication that needs no
database.

A license authenticates an instance when its RS256 signature verifies with a published key, this
service issued it (its jti is in `licenses`, for the customer it names) and it is not revoked.
This module checks the first (signature, issuer, the token's `exp`), once per token and process;
the rest is the one license lookup (core/licensing/lookup.py), which also judges the stored
expiry (`licenses.expires_at`), so cutting a license short in the database takes effect.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.errors import AuthenticationError
from core.licensing.keys import public_keys
from core.licensing.tokens import InvalidLicenseError, UnknownKeyError, verify_license
from core.settings import get_settings


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class InstanceIdentity:
    customer_id: str
    jti: str
    claims: dict[str, Any]


MISSING_LICENSE = "missing license: send it as `Authorization: Bearer <license JWT>`"
NOT_ISSUED_HERE = "invalid license: it was not issued by this service"
REVOKED = "license has been revoked; ask your provider for a new one"
EXPIRED = "invalid license: license has expired"
_VERIFIED_TOKENS = 8192


def verify_instance_token(token: str | None, *, allow_expired: bool = False) -> InstanceIdentity:
    """The part of authentication that needs no database: signature, issuer, expiry."""
    if not token or not token.strip():
        raise AuthenticationError(MISSING_LICENSE)
    try:
        claims = _verified_claims(token.strip(), get_settings().license_issuer)
    except InvalidLicenseError as exc:
        raise AuthenticationError(f"invalid license: {exc.reason}") from None
    # Expiry is checked on every call: the caches below only save the RSA verification.
    if not allow_expired and claims["exp"] <= time.time():
        raise AuthenticationError(EXPIRED)
    jti, subject = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not isinstance(subject, str):
        raise AuthenticationError("invalid license: it lacks a jti or sub claim")
    return InstanceIdentity(customer_id=subject, jti=jti, claims=claims)


def _verified_claims(token: str, issuer: str) -> dict[str, Any]:
    """The claims of a genuine token, verified once per process and key set.

    Both answers are remembered: instances send the same license every time, and a client that
    repeats a forged one must not make the service repeat the RSA work (failed authentications
    are also counted per client address by the rate limiter). Refusals are kept by digest, so
    large junk costs little memory.
    """
    published = _published_kids()
    try:
        return _checked(token, published, issuer)
    except UnknownKeyError:
        # The key set may have changed within the last second (a rotation): look again, at most
        # every REFRESH_SECONDS, so tokens naming made-up kids cannot make us read key files.
        now = time.monotonic()
        if now - _last_refresh[0] < _REFRESH_SECONDS:
            raise
        _last_refresh[0] = now
        return _checked(token, _published_kids(refresh=True), issuer)


def _checked(token: str, published: frozenset[str], issuer: str) -> dict[str, Any]:
    claims = _genuine.get((token, published, issuer))
    if claims is not None:
        return claims
    refusal_key = (hashlib.sha256(token.encode()).digest(), published, issuer)
    refused = _refusals.get(refusal_key)
    if refused is not None:
        raise refused
    try:
        claims = verify_license(token, public_keys(), issuer=issuer, verify_exp=False)
    except InvalidLicenseError as exc:
        _remember(_refusals, refusal_key, exc, _REMEMBERED_REFUSALS)
        raise
    # A token's signature never changes: verified once per process. The published kids are part
    # of the key, so removing a key verifies again.
    _remember(_genuine, (token, published, issuer), claims, _VERIFIED_TOKENS)
    return claims


def _remember(cache: dict[Any, Any], key: Any, value: Any, most: int) -> None:
    if len(cache) >= most:
        cache.clear()
    cache[key] = value


_REMEMBERED_REFUSALS = 4096
_REFRESH_SECONDS = 0.1
_refusals: dict[tuple[bytes, frozenset[str], str], InvalidLicenseError] = {}
_genuine: dict[tuple[str, frozenset[str], str], dict[str, Any]] = {}
_last_refresh = [0.0]


def _published_kids(*, refresh: bool = False) -> frozenset[str]:
    """The published key ids, read from the key files at most once a second per process."""
    if refresh:
        _kids_in_second.cache_clear()
    return _kids_in_second(int(time.monotonic()))


@lru_cache(maxsize=1)
def _kids_in_second(_second: int) -> frozenset[str]:
    return frozenset(public_keys())
