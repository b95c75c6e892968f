"""Authenticating a customer instance by the license it presents.

A license authenticates an instance when its RS256 signature verifies with a published key, this
service issued it (its jti is in `licenses`, for the customer it names) and it is not revoked.
Expired licenses are refused unless the caller allows them: check-in does, so an instance whose
trial lapsed can still pick up the license issued after the customer paid; usage reports do not.
Expiry is the stored one (`licenses.expires_at`) as well as the token's `exp`, so cutting a license
short in the database takes effect (within read_cache.MAX_AGE_SECONDS, how long a process keeps
what it read of a license unless a change is announced sooner).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, String, any_, bindparam, case, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from core.db_steps import Query, Row, Steps, run_steps
from core.errors import AuthenticationError
from core.licensing.keys import public_keys
from core.licensing.read_cache import license_read_cache
from core.licensing.tokens import InvalidLicenseError, UnknownKeyError, verify_license
from core.settings import get_settings
from models import Customer, License, utcnow


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


@lru_cache(maxsize=4)
def _license_check(dialect: str, *, with_current: bool) -> Select[Any]:
    """The presented licenses, their customers' revocation and each customer's current license:
    all of it `with_current` (check-in), else only its token and only when it is not the
    presented one (the usage ingress hands back nothing else; decoding the rest cost it CPU).

    Built once (on the ingress hot path, building it per call cost more than its round trip);
    on PostgreSQL the jtis are one array parameter, so the SQL is the same for any number.
    """
    current = aliased(License)
    jtis = (
        License.jti == any_(bindparam("jtis", type_=ARRAY(String)))
        if dialect == "postgresql"
        else License.jti.in_(bindparam("jtis", expanding=True))
    )
    current_columns = (
        (
            current.token.label("current_token"),
            current.kid.label("current_kid"),
            current.issued_at.label("current_issued_at"),
            current.expires_at.label("current_expires_at"),
        )
        if with_current
        else (case((current.jti != License.jti, current.token)).label("current_token"),)
    )
    return (
        select(
            License.jti,
            License.customer_id,
            License.revoked_at,
            License.expires_at,
            Customer.license_revoked_at,
            current.jti.label("current_jti"),
            *current_columns,
        )
        .join(Customer, Customer.customer_id == License.customer_id)
        .outerjoin(
            current,
            (current.customer_id == License.customer_id) & current.superseded_at.is_(None),
        )
        .where(jtis)
    )


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


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class StoredLicense:
    """The parts of a `licenses` row a reader is given."""

    customer_id: str
    jti: str
    kid: str
    token: str
    issued_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: License) -> StoredLicense:
        return cls(row.customer_id, row.jti, row.kid, row.token, row.issued_at, row.expires_at)


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class LicenseCheck:
    """What the database says of a presented license: why it is refused, and the newer one."""

    refusal: str | None
    # The customer's current license token when it is not the presented one.
    newer_license: str | None
    # The customer's current license (the presented one or newer), when not refused.
    current: StoredLicense | None = None


def check_licenses(
    session: Session, identities: list[InstanceIdentity], *, allow_expired: bool = False
) -> dict[str, LicenseCheck]:
    """For verified tokens, by jti: refused or not, the customer's newer license if any, and
    their current license."""
    dialect = session.get_bind().dialect.name
    return run_steps(session, checking_licenses(dialect, identities, allow_expired=allow_expired))


def checking_licenses(
    dialect: str, identities: list[InstanceIdentity], *, allow_expired: bool = False
) -> Steps[dict[str, LicenseCheck]]:
    """`check_licenses` as steps (core/db_steps.py).

    One round trip for any number of licenses: each license row, its customer's revocation and
    the customer's current license.
    """
    jtis = {identity.jti for identity in identities}
    if not jtis:
        return {}
    rows = yield Query(_license_check(dialect, with_current=True), {"jtis": list(jtis)})
    found = {row["jti"]: row for row in rows}
    now = utcnow()
    return {
        identity.jti: _judged(identity, found.get(identity.jti), now, allow_expired)
        for identity in identities
    }


# Made for every license the ingress reads: not frozen, since a frozen dataclass costs four times
# as much to build. Never changed once made: the cache hands the same one to many reports.
@dataclass(slots=True)
class LicenseFacts:
    """What the database holds on a presented license, as the usage ingress judges it; kept in
    the process's license read cache (core/licensing/read_cache.py) until a license changes."""

    customer_id: str
    # The license, or every license of its customer, is revoked.
    revoked: bool
    expires_at: datetime
    # The customer's current license token when it is not the presented one.
    newer_token: str | None

    @classmethod
    def of(cls, row: Row) -> LicenseFacts:
        current_jti = row["current_jti"]
        newer = current_jti is not None and current_jti != row["jti"]
        return cls(
            row["customer_id"],
            row["revoked_at"] is not None or row["license_revoked_at"] is not None,
            row["expires_at"],
            row["current_token"] if newer else None,
        )


_FACTS_KEY = "facts:"


def known_license_facts(jti: str) -> LicenseFacts | None:
    """The facts of a presented license as this process last read them, while no license has
    changed since (every API process hears of a change within a second); else None. Call it
    from the event loop."""
    facts = license_read_cache().get(_FACTS_KEY + jti)
    return facts if isinstance(facts, LicenseFacts) else None


def checking_presented_licenses(
    dialect: str, identities: list[InstanceIdentity], known: Mapping[str, LicenseFacts]
) -> Steps[dict[str, LicenseCheck]]:
    """The usage ingress's license check: refused or not, and the newer license to hand back.

    Licenses whose facts the process `known` (`known_license_facts`) cost no round trip, so a
    revocation reaches the usage ingress within a second, as it reaches check-in. The others are
    read in one round trip for any number of them, and kept for the next reports.
    """
    cache = license_read_cache()
    generation = cache.generation()  # before the read: a change during it is not cached
    # Looked up when each report arrived: only what is still current now counts (a change
    # announced while the report waited for its group drops it).
    facts = {
        jti: known_facts
        for jti, known_facts in known.items()
        if cache.peek(_FACTS_KEY + jti) is known_facts
    }
    unread = {identity.jti for identity in identities} - facts.keys()
    if unread:
        rows = yield Query(_license_check(dialect, with_current=False), {"jtis": list(unread)})
        for row in rows:
            facts[row["jti"]] = read = LicenseFacts.of(row)
            cache.put(_FACTS_KEY + row["jti"], read, generation)
    now = utcnow()
    checks = {}
    for identity in identities:
        presented = facts.get(identity.jti)
        refusal = _refusal(identity, presented, now, allow_expired=False)
        newer = presented.newer_token if presented is not None and refusal is None else None
        checks[identity.jti] = LicenseCheck(refusal, newer)
    return checks


def _refusal(
    identity: InstanceIdentity, facts: LicenseFacts | None, now: datetime, *, allow_expired: bool
) -> str | None:
    """Why the presented license does not authenticate its instance, or None."""
    # A genuine signature over an unknown jti means a key leaked or a token was forged with it:
    # only licenses recorded here are accepted.
    if facts is None or facts.customer_id != identity.customer_id:
        return NOT_ISSUED_HERE
    # While a customer is revoked every license of theirs is refused, the one that says
    # "revoked" included: it exists for the audit trail and offline checks, not to be used.
    if facts.revoked:
        return REVOKED
    if not allow_expired and facts.expires_at <= now:
        return EXPIRED
    return None


def _judged(
    identity: InstanceIdentity, row: Row | None, now: datetime, allow_expired: bool
) -> LicenseCheck:
    facts = LicenseFacts.of(row) if row is not None else None
    refusal = _refusal(identity, facts, now, allow_expired=allow_expired)
    if refusal is not None or row is None:
        return LicenseCheck(refusal, None)
    current_jti = row["current_jti"]
    if current_jti is None:
        return LicenseCheck(None, None, None)
    current = StoredLicense(
        row["customer_id"],
        current_jti,
        row["current_kid"],
        row["current_token"],
        row["current_issued_at"],
        row["current_expires_at"],
    )
    newer = current.token if current_jti != identity.jti else None
    return LicenseCheck(None, newer, current)


def authenticate_instance(
    session: Session, token: str | None, *, allow_expired: bool = False
) -> InstanceIdentity:
    identity = verify_instance_token(token, allow_expired=allow_expired)
    refusal = check_licenses(session, [identity], allow_expired=allow_expired)[identity.jti].refusal
    if refusal is not None:
        raise AuthenticationError(refusal)
    return identity
