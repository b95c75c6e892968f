"""The operator's side of overage meter events: what was sent, what Stripe refused for good,
what could not be confirmed, and settling those.

A meter event Stripe refuses for good (a 400 that is not its "already exists" duplicate answer,
e.g. the Stripe customer was deleted) is tried on OVERAGE_EVENT_MAX_ATTEMPTS runs
(`core.billing.metering.sending.record_outcome`), then marked failed: the runs no longer send it, it
is listed by `billing stripe meter-events --failed` and counted on /metrics, and
`billing stripe meter-retry` gives it a fresh set of attempts once the cause is fixed.

An event whose outcome has been unknown for longer than Stripe refuses a resent identifier is set
aside as unconfirmed (`core.billing.metering.sending`): Stripe may or may not hold it, and a resend
could bill it twice. It is listed by `billing stripe meter-events --unconfirmed` and counted on
/metrics; an operator looks for its identifier in Stripe and settles it with
`billing stripe meter-settle`: in Stripe (recorded as sent) or not (sent again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from core import audit
from models import Customer, OverageMeterEvent, utcnow

# Stripe validates meter events after accepting them and reports those it refused in this thin
# event, with sample identifiers per error code (docs.stripe.com/api/v2/core/events/event-types).
ERROR_REPORT_EVENT = "v1.billing.meter.error_report_triggered"

# What an event is, for listings: delivered, waiting to be (re)sent, given up on, or set aside
# until an operator says whether Stripe holds it.
SENT = "sent"
UNSENT = "unsent"
FAILED = "failed"
UNCONFIRMED = "unconfirmed"


def state_of(row: OverageMeterEvent) -> str:
    if row.sent_at is not None:
        return SENT
    if row.failed_at is not None:
        return FAILED
    return UNCONFIRMED if row.unconfirmed_at is not None else UNSENT


def in_state(state: str) -> ColumnElement[bool]:
    """The rows in `state` (as `state_of` names them), in SQL."""
    unsent = OverageMeterEvent.sent_at.is_(None)
    if state == SENT:
        return OverageMeterEvent.sent_at.is_not(None)
    if state == FAILED:
        return unsent & OverageMeterEvent.failed_at.is_not(None)
    waiting = unsent & OverageMeterEvent.failed_at.is_(None)
    if state == UNCONFIRMED:
        return waiting & OverageMeterEvent.unconfirmed_at.is_not(None)
    return waiting & OverageMeterEvent.unconfirmed_at.is_(None)


def recent_events(
    session: Session, *, state: str | None = None, limit: int = 50
) -> list[OverageMeterEvent]:
    """Meter events, newest day first, optionally only those in `state`."""
    query = select(OverageMeterEvent).order_by(
        OverageMeterEvent.day.desc(), OverageMeterEvent.id.desc()
    )
    if state is not None:
        query = query.where(in_state(state))
    return list(session.scalars(query.limit(limit)))


def count_in_state(session: Session, state: str) -> int:
    """How many meter events are in `state` (the /metrics gauges of failed and unconfirmed)."""
    found = session.scalar(
        select(func.count()).select_from(OverageMeterEvent).where(in_state(state))
    )
    return int(found or 0)


def failed_count(session: Session) -> int:
    """Meter events Stripe refused for good and no run sends any more (a /metrics gauge)."""
    return count_in_state(session, FAILED)


def retry_failed(session: Session, event_ids: Sequence[int] | None = None) -> list[int]:
    """Give failed events (all, or those of `event_ids`) a fresh set of attempts, so the next
    send picks them up again; the ids reset. The caller commits. Idempotent: an event that is
    not failed (sent, or still being tried) is left as it is.

    Each is addressed to the customer's Stripe customer as it is now: one deleted in Stripe is
    replaced by the next checkout, and the refused event belongs to the new one (its identifier
    stays: Stripe never took it). One that also had an attempt of unknown outcome longer ago than
    OVERAGE_EVENT_RESEND_WINDOW_HOURS is set aside by the next send instead, to be settled.
    """
    current = (
        select(Customer.stripe_customer_id)
        .where(Customer.customer_id == OverageMeterEvent.customer_id)
        .scalar_subquery()
    )
    stmt = update(OverageMeterEvent).where(in_state(FAILED))
    if event_ids is not None:
        stmt = stmt.where(OverageMeterEvent.id.in_(list(event_ids)))
    stmt = stmt.values(
        failed_at=None,
        refusals=0,
        stripe_customer_id=func.coalesce(current, OverageMeterEvent.stripe_customer_id),
    ).returning(OverageMeterEvent.id, OverageMeterEvent.customer_id)
    by_customer: dict[str, list[int]] = {}
    for event_id, customer_id in session.execute(stmt):
        by_customer.setdefault(customer_id, []).append(event_id)
    # One entry per customer, so the audit log's customer filter finds each.
    for customer_id, ids in sorted(by_customer.items()):
        audit.record(
            session, "meter_event.retry", customer_id=customer_id, after={"event_ids": sorted(ids)}
        )
    return sorted(event_id for ids in by_customer.values() for event_id in ids)


def settle_unconfirmed(session: Session, event_ids: Sequence[int], *, in_stripe: bool) -> list[int]:
    """Settle unconfirmed events (`event_ids`) after looking for their identifiers in Stripe; the
    ids settled. The caller commits. Idempotent: an event that is not unconfirmed is left alone.

    `in_stripe`: Stripe holds them, so they are recorded as sent and never sent again. Otherwise
    Stripe never took them: their doubt is lifted and the next send delivers them (a resend of
    what Stripe does not hold cannot bill twice).
    """
    stmt = update(OverageMeterEvent).where(
        in_state(UNCONFIRMED), OverageMeterEvent.id.in_(list(event_ids))
    )
    if in_stripe:
        now = utcnow()
        settled = {"settled": "in Stripe, confirmed by an operator", "at": now.isoformat()}
        stmt = stmt.values(
            sent_at=now, unconfirmed_at=None, last_error=None, stripe_response=settled
        )
    else:
        stmt = stmt.values(unconfirmed_at=None, outcome_unknown_since=None, last_error=None)
    settled_ids = sorted(session.scalars(stmt.returning(OverageMeterEvent.id)))
    if settled_ids:
        outcome = "in Stripe" if in_stripe else "not in Stripe: sent again"
        audit.record(
            session, "meter_event.settle", after={"event_ids": settled_ids, "outcome": outcome}
        )
    return settled_ids


def reported_errors(full_event: dict[str, Any]) -> dict[str, str]:
    """Identifier -> what Stripe says is wrong with it, from a full error report event. Only
    the samples Stripe lists are named: others of the same cause show up in Stripe's Dashboard."""
    reason = ((full_event.get("data") or {}).get("reason")) or {}
    found: dict[str, str] = {}
    for error_type in reason.get("error_types") or []:
        code = str(error_type.get("code") or "invalid")
        for sample in error_type.get("sample_errors") or []:
            identifier = ((sample.get("request") or {}).get("identifier")) or ""
            if identifier:
                found[str(identifier)] = f"{code}: {sample.get('error_message') or ''}".strip()
    return found


def report_summary(full_event: dict[str, Any]) -> tuple[str, int]:
    """What an error report says as a whole (its count, window and causes), and its count:
    Stripe names only a sample of the invalid events, so the count is what an operator needs."""
    data = full_event.get("data") or {}
    reason = data.get("reason") or {}
    count = int(reason.get("error_count") or 0)
    causes = ", ".join(
        f"{kind.get('code') or 'invalid'} x{int(kind.get('error_count') or 0)}"
        for kind in reason.get("error_types") or []
    )
    window = f"{data.get('validation_start')} .. {data.get('validation_end')}"
    summary = (
        f"Stripe found {count} meter event(s) invalid between {window} ({causes or 'no cause'}); "
        "only the sampled ones are marked failed: look for the rest in Stripe's Dashboard "
        "(Billing > Meters), then `billing stripe meter-retry` once fixed"
    )
    return summary, count


def mark_reported(session: Session, errors: dict[str, str]) -> list[int]:
    """Mark the meter events Stripe reported invalid as failed (their ids); the caller commits.
    Stripe accepted them but never counts them, so they are not sent: the row is no longer
    sent, it is failed with Stripe's reason, and `billing stripe meter-retry` sends it again once
    the cause is fixed. It gets a fresh identifier now (the refused one is kept in its Stripe
    answer): Stripe may still hold the refused one and would take a resend of it for a
    duplicate. Idempotent: an event already failed is left alone."""
    if not errors:
        return []
    rows = session.scalars(
        select(OverageMeterEvent)
        .where(OverageMeterEvent.identifier.in_(list(errors)))
        .with_for_update()
    ).all()
    now = utcnow()
    marked = []
    for row in rows:
        if row.failed_at is not None:
            continue
        row.sent_at = None
        row.failed_at = now
        row.outcome_unknown_since = None
        row.last_error = f"Stripe reported it invalid after accepting it ({errors[row.identifier]})"
        row.stripe_response = {**(row.stripe_response or {}), "reportedInvalid": row.identifier}
        row.identifier = _fresh_identifier(row.identifier)
        marked.append(row.id)
    session.flush()
    return sorted(marked)


def _fresh_identifier(identifier: str) -> str:
    """`...-r1`, then `...-r2`: at most 96 characters (identifiers are 93 at most)."""
    base, _, resend = identifier.rpartition("-r")
    if base and resend.isdigit():
        return f"{base}-r{int(resend) + 1}"
    return f"{identifier}-r1"
