"""The operator's side of overage meter events: what was sent, what Stripe refused for good,
and sending a failed one again.

A meter event Stripe refuses for good (a 400 that is not its "already exists" duplicate answer,
e.g. the Stripe customer was deleted) is tried on OVERAGE_EVENT_MAX_ATTEMPTS metering runs
(`core.billing.metering.record_outcome`), then marked failed: the runs no longer send it, it is
listed by `billing stripe meter-events --failed` and counted on /metrics, and
`billing stripe meter-retry` gives it a fresh set of attempts once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from models import Customer, OverageMeterEvent

# What an event is, for listings: delivered, waiting to be (re)sent, or given up on.
SENT = "sent"
UNSENT = "unsent"
FAILED = "failed"


def state_of(row: OverageMeterEvent) -> str:
    if row.sent_at is not None:
        return SENT
    return FAILED if row.failed_at is not None else UNSENT


def _in_state(state: str) -> ColumnElement[bool]:
    if state == SENT:
        return OverageMeterEvent.sent_at.is_not(None)
    if state == FAILED:
        return OverageMeterEvent.sent_at.is_(None) & OverageMeterEvent.failed_at.is_not(None)
    return OverageMeterEvent.sent_at.is_(None) & OverageMeterEvent.failed_at.is_(None)


def recent_events(
    session: Session, *, state: str | None = None, limit: int = 50
) -> list[OverageMeterEvent]:
    """Meter events, newest day first, optionally only those in `state`."""
    query = select(OverageMeterEvent).order_by(
        OverageMeterEvent.day.desc(), OverageMeterEvent.id.desc()
    )
    if state is not None:
        query = query.where(_in_state(state))
    return list(session.scalars(query.limit(limit)))


def failed_count(session: Session) -> int:
    """Meter events Stripe refused for good and no run sends any more (a /metrics gauge)."""
    found = session.scalar(
        select(func.count()).select_from(OverageMeterEvent).where(_in_state(FAILED))
    )
    return int(found or 0)


def retry_failed(session: Session, event_ids: Sequence[int] | None = None) -> list[int]:
    """Give failed events (all, or those of `event_ids`) a fresh set of attempts, so the next
    send picks them up again; the ids reset. The caller commits. Idempotent: an event that is
    not failed (sent, or still being tried) is left as it is.

    Each is addressed to the customer's Stripe customer as it is now: one deleted in Stripe is
    replaced by the next checkout, and the refused event belongs to the new one (its identifier
    stays: Stripe never took it).
    """
    current = (
        select(Customer.stripe_customer_id)
        .where(Customer.customer_id == OverageMeterEvent.customer_id)
        .scalar_subquery()
    )
    stmt = update(OverageMeterEvent).where(_in_state(FAILED))
    if event_ids is not None:
        stmt = stmt.where(OverageMeterEvent.id.in_(list(event_ids)))
    stmt = stmt.values(
        failed_at=None,
        refusals=0,
        stripe_customer_id=func.coalesce(current, OverageMeterEvent.stripe_customer_id),
    ).returning(OverageMeterEvent.id)
    return sorted(session.scalars(stmt))
