"""The one lookup of a presented license: what the service holds on it, cached per process.

Check-in, the usage ingress and the usage read all judge a license whose signature verified
(`instance_auth.verify_instance_token`) by the same facts (`LicenseFacts`): whether this service
issued it to the customer it names, whether it or its customer is revoked, its stored expiry,
and the customer's current license (the newer one to hand back). They are read with one indexed
query (`reading_license_facts`, any number of licenses in one round trip), kept in the process's
license read cache (core/licensing/read_cache.py: every API process drops them within
TRUST_SECONDS of a license change) and judged by one rule (`license_refusal`).

- `look_up_license(identity)`: from the event loop; a miss is read in a worker thread, once for
  every request that misses the same license meanwhile (`single_flight`). Check-in.
- `known_license_facts(jti)` and `checking_presented_licenses(...)`: the usage ingress, which
  reads what the cache lacks together with its group of reports, in the group's round trip.
- `authenticate_instance(session, token)`: in a caller's session (the usage read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import anyio.to_thread
from sqlalchemy import Select, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from core.db import session_scope
from core.db_steps import Query, Row, Steps, run_steps
from core.errors import AuthenticationError
from core.licensing.instance_auth import (
    EXPIRED,
    NOT_ISSUED_HERE,
    REVOKED,
    InstanceIdentity,
    verify_instance_token,
)
from core.licensing.keys import public_pem_for
from core.licensing.read_cache import license_read_cache
from models import Customer, License, utcnow


# Made for every license read: not frozen, since a frozen dataclass costs four times as much to
# build.
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


@dataclass(frozen=True, slots=True)
class LicenseAnswer:
    """A customer's current license and the public key that verifies it."""

    license: StoredLicense
    public_key: str
    # Serialisations of this answer, kept by the API so a cached answer is encoded once.
    rendered: dict[object, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, stored: StoredLicense) -> LicenseAnswer:
        return cls(stored, _public_pem(stored.kid, int(time.monotonic())))


@lru_cache(maxsize=16)
def _public_pem(kid: str, _second: int) -> str:
    # Looked up at most once a second per kid: the ingress builds answers on the event loop, for
    # every license a group lacks (all of them just after a change), and the lookup reads files.
    return public_pem_for(kid)


# Made for every license read: not frozen, since a frozen dataclass costs four times as much to
# build. Never changed once made: the cache hands the same one to many requests.
@dataclass(slots=True)
class LicenseFacts:
    """What the database holds on a presented license."""

    customer_id: str
    # The license, or every license of its customer, is revoked.
    revoked: bool
    expires_at: datetime
    # The customer's current license (the presented one or a newer one), if any.
    current: LicenseAnswer | None

    def newer_token(self, jti: str) -> str | None:
        """The customer's current license token when it is not the presented license `jti`."""
        current = self.current
        return None if current is None or current.license.jti == jti else current.license.token


# A genuine signature over a jti this service never recorded: cached like any facts, so a client
# repeating it costs no query. Its empty customer matches no identity (`license_refusal`).
_NOT_ISSUED = LicenseFacts("", True, datetime.min.replace(tzinfo=UTC), None)
_KEY = "license:"


def license_refusal(
    identity: InstanceIdentity, facts: LicenseFacts | None, *, allow_expired: bool
) -> str | None:
    """Why the presented license does not authenticate its instance, or None. Expired licenses
    may check in (to collect the license issued after a lapsed trial was paid), not report."""
    # A genuine signature over an unknown jti means a key leaked or a token was forged with it:
    # only licenses recorded here are accepted.
    if facts is None or facts.customer_id != identity.customer_id:
        return NOT_ISSUED_HERE
    # While a customer is revoked every license of theirs is refused, the one that says
    # "revoked" included: it exists for the audit trail and offline checks, not to be used.
    if facts.revoked:
        return REVOKED
    if not allow_expired and facts.expires_at <= utcnow():
        return EXPIRED
    return None


# -- reading -----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _facts_query(dialect: str) -> Select[Any]:
    """The presented licenses, their customers' revocation and each customer's current license.

    Built once (on the ingress hot path, building it per call cost more than its round trip);
    on PostgreSQL the jtis are one array parameter, so the SQL is the same for any number.
    """
    current = aliased(License)
    jtis = (
        License.jti == any_(bindparam("jtis", type_=ARRAY(String)))
        if dialect == "postgresql"
        else License.jti.in_(bindparam("jtis", expanding=True))
    )
    return (
        select(
            License.jti,
            License.customer_id,
            License.revoked_at,
            License.expires_at,
            Customer.license_revoked_at,
            current.jti.label("current_jti"),
            current.kid.label("current_kid"),
            current.token.label("current_token"),
            current.issued_at.label("current_issued_at"),
            current.expires_at.label("current_expires_at"),
        )
        .join(Customer, Customer.customer_id == License.customer_id)
        .outerjoin(
            current,
            (current.customer_id == License.customer_id) & current.superseded_at.is_(None),
        )
        .where(jtis)
    )


def _facts_of(row: Row) -> LicenseFacts:
    current = None
    if row["current_jti"] is not None:
        current = LicenseAnswer.of(
            StoredLicense(
                row["customer_id"],
                row["current_jti"],
                row["current_kid"],
                row["current_token"],
                row["current_issued_at"],
                row["current_expires_at"],
            )
        )
    revoked = row["revoked_at"] is not None or row["license_revoked_at"] is not None
    return LicenseFacts(row["customer_id"], revoked, row["expires_at"], current)


def reading_license_facts(dialect: str, jtis: Collection[str]) -> Steps[dict[str, LicenseFacts]]:
    """The facts of these licenses, read in one round trip (as steps: core/db_steps.py) and kept
    in the cache."""
    if not jtis:
        return {}
    cache = license_read_cache()
    generation = cache.generation()  # before the read: a change during it is not cached
    rows = yield Query(_facts_query(dialect), {"jtis": list(jtis)})
    found = {row["jti"]: _facts_of(row) for row in rows}
    facts = {jti: found.get(jti, _NOT_ISSUED) for jti in jtis}
    for jti, read in facts.items():
        cache.put(_KEY + jti, read, generation)
    return facts


def read_license_facts(session: Session, jtis: Collection[str]) -> dict[str, LicenseFacts]:
    return run_steps(session, reading_license_facts(session.get_bind().dialect.name, jtis))


def _read_in_own_transaction(jti: str) -> LicenseFacts:
    with session_scope() as session:
        return read_license_facts(session, [jti])[jti]


async def look_up_license(identity: InstanceIdentity) -> LicenseFacts:
    """The facts of a verified license: cached, else read once for all who ask meanwhile."""
    facts = license_read_cache().get(_KEY + identity.jti)
    if facts is None:
        facts = await single_flight(_KEY + identity.jti, _read_in_own_transaction, identity.jti)
    return facts  # type: ignore[no-any-return]


def authenticate_instance(
    session: Session, token: str | None, *, allow_expired: bool = False
) -> InstanceIdentity:
    """The verified identity of a presented license, judged in `session` (401 if refused)."""
    identity = verify_instance_token(token, allow_expired=allow_expired)
    facts = license_read_cache().peek(_KEY + identity.jti)
    if facts is None:
        facts = read_license_facts(session, [identity.jti])[identity.jti]
    refusal = license_refusal(identity, facts, allow_expired=allow_expired)
    if refusal is not None:
        raise AuthenticationError(refusal)
    return identity


# -- the usage ingress ---------------------------------------------------------------------------


def known_license_facts(jti: str) -> LicenseFacts | None:
    """The facts of a presented license as this process last read them, while they may not be
    stale; else None. Call it from the event loop."""
    return license_read_cache().get(_KEY + jti)  # type: ignore[no-any-return]


# Made per report: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class LicenseCheck:
    """How a presented license is judged: why it is refused, and the newer one to hand back."""

    refusal: str | None
    newer_license: str | None


def checking_presented_licenses(
    dialect: str, identities: list[InstanceIdentity], known: Mapping[str, LicenseFacts]
) -> Steps[dict[str, LicenseCheck]]:
    """The usage ingress's license check, by jti: refused or not, and the newer license.

    Licenses whose facts the process `known` when their reports arrived (`known_license_facts`)
    cost no round trip while still current (a change announced while a report waited for its
    group drops them); the others are read in one round trip for any number of them.
    """
    cache = license_read_cache()
    facts = {jti: seen for jti, seen in known.items() if cache.peek(_KEY + jti) is seen}
    unread = {identity.jti for identity in identities} - facts.keys()
    if unread:
        facts.update((yield from reading_license_facts(dialect, unread)))
    checks = {}
    for identity in identities:
        presented = facts[identity.jti]
        refusal = license_refusal(identity, presented, allow_expired=False)
        newer = presented.newer_token(identity.jti) if refusal is None else None
        checks[identity.jti] = LicenseCheck(refusal, newer)
    return checks


# -- single flight -------------------------------------------------------------------------------

# The reads under way, by key and the read cache's generation when they started: a request after
# an invalidation (a revocation, a plan change) never joins a read that may predate it.
in_flight: dict[tuple[str, int], asyncio.Future[Any]] = {}


def reading(key: str) -> bool:
    """Whether a read of `key` started since the last invalidation is under way."""
    return (key, license_read_cache().generation()) in in_flight


async def single_flight(key: str, load: Callable[..., Any], *args: Any) -> Any:
    """`load(*args)` in a worker thread, shared by every request that misses `key` meanwhile: a
    burst of misses (start-up, just after an invalidation) costs one database read, not one per
    request."""
    loop = asyncio.get_running_loop()
    flight = (key, license_read_cache().generation())
    pending = in_flight.get(flight)
    if pending is not None and pending.get_loop() is loop:
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request was cancelled itself
            # The request doing the read went away (its client hung up): do it here instead.
    future: asyncio.Future[Any] = loop.create_future()
    in_flight[flight] = future
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
        if in_flight.get(flight) is future:
            del in_flight[flight]
