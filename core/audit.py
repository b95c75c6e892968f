"""The audit log: who changed what, from any door (console, API, CLI).

Every operator change calls `record` inside the transaction that makes the change, so the entry
and the change commit or roll back together. The door names the actor once per unit of work
(`act_as`: the API key's name, or `cli:` and the OS user); a change made with no actor named
(a task, a webhook) is recorded as `system`. Entries are never updated or deleted: nothing here
does, and on PostgreSQL a trigger refuses it (migrations/versions/0007_console.py).
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from core.logging import request_id_var
from models import AuditEntry, Customer

ACTOR_KEY = "audit_actor"
REASON_KEY = "audit_reason"
SYSTEM_ACTOR = "system"
PAGE_SIZE = 50


def act_as(session: Session, actor: str) -> None:
    """Names who the session's changes are made by (read by `record`)."""
    session.info[ACTOR_KEY] = actor


def give_reason(session: Session, reason: str) -> None:
    """The operator's reason for the session's changes, kept by entries recorded without one
    (a service that takes no reason of its own, such as a cancel)."""
    session.info[REASON_KEY] = reason


def actor_of(session: Session) -> str:
    return str(session.info.get(ACTOR_KEY) or SYSTEM_ACTOR)


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        user = "unknown"
    return f"cli:{user}"


def _plain(value: Any) -> Any:
    """A JSON-storable form of a value the audit shows (times as ISO 8601 in UTC)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


def _differences(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only the values the change altered; a side with nothing left is None."""
    old = {key: _plain(value) for key, value in (before or {}).items()}
    new = {key: _plain(value) for key, value in (after or {}).items()}
    changed = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    old = {key: value for key, value in old.items() if key in changed}
    new = {key: value for key, value in new.items() if key in changed}
    return old or None, new or None


def record(
    session: Session,
    action: str,
    *,
    customer_id: str | None = None,
    reason: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Adds one audit entry to the session's transaction (flushed, so it has its id)."""
    old, new = _differences(before, after)
    entry = AuditEntry(
        actor=actor_of(session),
        action=action,
        customer_id=customer_id,
        reason=reason or session.info.get(REASON_KEY),
        before=old,
        after=new,
        request_id=request_id_var.get(),
    )
    session.add(entry)
    session.flush()
    return entry


REVOKE_ACTION = "license.revoke"


def revocation_entry(session: Session, customer_id: str, revoked_at: datetime) -> AuditEntry | None:
    """The entry of the revocation that revoked a license of the customer at `revoked_at`: the
    latest `license.revoke` whose revocation time is not after it (a license issued while the
    customer stays revoked is revoked by that same revocation). Read through
    ix_audit_log_customer."""
    entries = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.customer_id == customer_id, AuditEntry.action == REVOKE_ACTION)
        .order_by(AuditEntry.id.desc())
    )
    for entry in entries:
        moment = (entry.after or {}).get("revoked_at")
        # To the second: a license issued while revoked is revoked at its issue time, in
        # whole seconds (its `iat`), maybe within the second the revocation began.
        if isinstance(moment, str) and (
            datetime.fromisoformat(moment).replace(microsecond=0) <= revoked_at
        ):
            return entry
    return None


@dataclass(frozen=True)
class AuditFilter:
    customer_id: str | None = None
    actor: str | None = None
    since: datetime | None = None


def _filtered(query: Select[tuple[AuditEntry]], wanted: AuditFilter) -> Select[tuple[AuditEntry]]:
    if wanted.customer_id:
        query = query.where(AuditEntry.customer_id == wanted.customer_id)
    if wanted.actor:
        query = query.where(AuditEntry.actor == wanted.actor)
    if wanted.since is not None:
        query = query.where(AuditEntry.created_at >= wanted.since)
    return query


def list_entries(
    session: Session,
    wanted: AuditFilter,
    *,
    limit: int = PAGE_SIZE,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Entries newest first; `before_id` pages on (keyset: the next page starts below it)."""
    query = _filtered(select(AuditEntry), wanted)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    # Every actor that has an entry, for the page's filter.
    actors: list[str]
    # Where the next (older) page starts; None on the last page.
    next_before_id: int | None
    # The company (or email) of each customer on the page, by customer id.
    customer_names: dict[str, str]


def audit_page(session: Session, wanted: AuditFilter, *, before_id: int | None = None) -> AuditPage:
    """One page of the console's audit view: entries newest first and the actors to filter by."""
    entries = list_entries(session, wanted, limit=PAGE_SIZE + 1, before_id=before_id)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    actors = _actors(session)
    return AuditPage(
        entries=entries,
        actors=actors,
        next_before_id=entries[-1].id if more else None,
        customer_names=_customer_names(session, {e.customer_id for e in entries if e.customer_id}),
    )


def _customer_names(session: Session, customer_ids: set[str]) -> dict[str, str]:
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Customer.customer_id, Customer.company_name, Customer.email).where(
            Customer.customer_id.in_(customer_ids)
        )
    )
    return {row.customer_id: row.company_name or row.email for row in rows}


# A loose index scan over ix_audit_log_actor: one index probe per distinct actor, where a plain
# DISTINCT reads the whole log (PostgreSQL has no skip scan for it).
_ACTORS_POSTGRESQL = text(
    "WITH RECURSIVE found(actor) AS ("
    " (SELECT actor FROM audit_log ORDER BY actor LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT a.actor FROM audit_log a WHERE a.actor > found.actor"
    " ORDER BY a.actor LIMIT 1)"
    " FROM found WHERE found.actor IS NOT NULL)"
    " SELECT actor FROM found WHERE actor IS NOT NULL"
)


def _actors(session: Session) -> list[str]:
    if session.get_bind().dialect.name == "postgresql":
        return list(session.execute(_ACTORS_POSTGRESQL).scalars())
    return list(session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))
