"""A customer's timeline: everything that happened to them, newest first, from every system.

Licenses issued (and reissued, revoked, reinstated), plan changes (a license on another plan than
the one before it), Stripe events with how they were handled, usage days (peak devices), overage
meter events sent to Stripe, and the audit log's entries: operators' actions, and the system's
(a task's or a webhook's, actor `system`) apart from them. Each source is read newest
first through an index on the customer, at most PER_SOURCE entries, then merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.usage.days import utc_day_start
from models import AuditEntry, License, OverageMeterEvent, StripeEvent

PER_SOURCE = 100
# The merged timeline shows this many of the newest entries (a filter shows up to PER_SOURCE of
# its kinds): a page of 500 rows costs more to draw than to read and no operator scrolls it.
SHOWN = 200
# The timeline's filters and the kinds each shows.
FILTERS: dict[str, frozenset[str] | None] = {
    "all": None,
    "payment": frozenset({"stripe", "meter"}),
    "license": frozenset({"license", "plan"}),
    "usage": frozenset({"usage"}),
    "operators": frozenset({"operator"}),
    "system": frozenset({"system"}),
}


@dataclass(frozen=True, slots=True)
class TimelineItem:
    at: datetime
    kind: str
    text: str
    # The id it is about (license jti, Stripe event id, meter identifier, audit entry id).
    ref: str | None = None
    # How it ended, where that is a question (a Stripe event's handling, a meter event's send).
    outcome: str | None = None
    problem: bool = False
    # The signing key's id, on a license's entries (which key an instance must trust).
    kid: str | None = None


def _licenses(session: Session, customer_id: str) -> Iterable[TimelineItem]:
    rows = session.execute(
        select(
            License.jti,
            License.plan,
            License.kid,
            License.issued_at,
            License.expires_at,
            License.revoked_at,
            License.revoked_reason,
        )
        .where(License.customer_id == customer_id)
        .order_by(License.id.desc())
        .limit(PER_SOURCE + 1)
    ).all()
    revocations: set[datetime] = set()
    for index, row in enumerate(rows[:PER_SOURCE]):
        older = rows[index + 1] if index + 1 < len(rows) else None
        born_revoked = row.revoked_at is not None and row.revoked_at == row.issued_at
        text = (
            f"license issued saying revoked ({row.plan})"
            if born_revoked
            else f"{row.plan} license issued, expires {row.expires_at:%Y-%m-%d}"
        )
        yield TimelineItem(row.issued_at, "license", text, ref=row.jti, kid=row.kid)
        if older is not None and older.plan != row.plan:
            yield TimelineItem(row.issued_at, "plan", f"plan changed: {older.plan} → {row.plan}")
        if row.revoked_at is not None and not born_revoked and row.revoked_at not in revocations:
            revocations.add(row.revoked_at)
            reason = row.revoked_reason or "revoked"
            yield TimelineItem(
                row.revoked_at,
                "license",
                f"licenses revoked: “{reason}”",
                ref=row.jti,
                problem=True,
                kid=row.kid,
            )


def _amount(payload: dict | None) -> str:  # type: ignore[type-arg]
    obj = ((payload or {}).get("data") or {}).get("object") or {}
    for key in ("amount_paid", "amount_due", "amount_total", "amount"):
        cents = obj.get(key)
        if isinstance(cents, int):
            whole, part = divmod(abs(cents), 100)
            return f" {'-' if cents < 0 else ''}${whole:,}.{part:02d}"
    return ""


def _stripe_events(session: Session, customer_id: str) -> Iterable[TimelineItem]:
    rows = session.execute(
        select(
            StripeEvent.event_id,
            StripeEvent.type,
            StripeEvent.payload,
            StripeEvent.received_at,
            StripeEvent.status,
            StripeEvent.last_error,
        )
        # The one rule for an event's customer (core.billing.event_customers), the same column
        # the event list filters by, through ix_stripe_events_customer_created; it outlives a
        # pruned payload.
        .where(StripeEvent.customer_id == customer_id)
        .order_by(StripeEvent.stripe_created.desc(), StripeEvent.id.desc())
        .limit(PER_SOURCE)
    )
    for row in rows:
        outcome = row.status + (f": {row.last_error}" if row.last_error else "")
        yield TimelineItem(
            row.received_at,
            "stripe",
            f"{row.type}{_amount(row.payload)}",
            ref=row.event_id,
            outcome=outcome,
            problem=row.status == "failed",
        )


def _usage_days(days: Sequence[tuple[date, int]], limit: int | None) -> Iterable[TimelineItem]:
    for day, devices in days:
        if devices:
            over = limit is not None and devices > limit
            text = f"peak {devices:,} devices" + (f" (limit {limit:,})" if over else "")
            yield TimelineItem(utc_day_start(day), "usage", text, problem=over)


def _meter_events(session: Session, customer_id: str) -> Iterable[TimelineItem]:
    rows = session.execute(
        select(
            OverageMeterEvent.day,
            OverageMeterEvent.value,
            OverageMeterEvent.identifier,
            OverageMeterEvent.created_at,
            OverageMeterEvent.sent_at,
            OverageMeterEvent.failed_at,
            OverageMeterEvent.unconfirmed_at,
            OverageMeterEvent.last_error,
        )
        .where(OverageMeterEvent.customer_id == customer_id)
        .order_by(OverageMeterEvent.day.desc(), OverageMeterEvent.sequence.desc())
        .limit(PER_SOURCE)
    )
    for row in rows:
        if row.sent_at is not None:
            outcome, problem = "sent", False
        elif row.failed_at is not None:
            outcome, problem = f"refused by Stripe: {row.last_error or ''}".strip(), True
        elif row.unconfirmed_at is not None:
            outcome, problem = "unconfirmed: settle it (billing stripe meter-settle)", True
        else:
            outcome, problem = "not sent yet", False
        yield TimelineItem(
            row.sent_at or row.created_at,
            "meter",
            f"{row.value:,} device-days of {row.day:%Y-%m-%d}",
            ref=row.identifier,
            outcome=outcome,
            problem=problem,
        )


def _operator_actions(session: Session, customer_id: str) -> Iterable[TimelineItem]:
    # The columns shown, not the entries (their before/after JSON is the audit page's).
    rows = session.execute(
        select(
            AuditEntry.id,
            AuditEntry.created_at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.reason,
        )
        .where(AuditEntry.customer_id == customer_id)
        .order_by(AuditEntry.id.desc())
        .limit(PER_SOURCE)
    )
    for entry in rows:
        reason = f" — “{entry.reason}”" if entry.reason else ""
        yield TimelineItem(
            entry.created_at,
            # A task's or a webhook's change is the system's, not an operator's.
            "system" if entry.actor == audit.SYSTEM_ACTOR else "operator",
            f"{entry.actor}: {entry.action}{reason}",
            ref=str(entry.id),
        )


def customer_timeline(
    session: Session,
    customer_id: str,
    usage_days: Sequence[tuple[date, int]],
    device_limit: int | None,
) -> list[TimelineItem]:
    """The merged timeline, newest first (`usage_days`: the page's days and their devices)."""
    items = [
        *_licenses(session, customer_id),
        *_stripe_events(session, customer_id),
        *_usage_days(usage_days, device_limit),
        *_meter_events(session, customer_id),
        *_operator_actions(session, customer_id),
    ]
    items.sort(key=lambda item: item.at, reverse=True)
    return items


def shown(items: Sequence[TimelineItem], show: str) -> list[TimelineItem]:
    """The newest SHOWN items a filter shows. "all" keeps of the usage days only the latest and
    those over the limit: a quiet day a month is noise there (the usage filter lists every
    day)."""
    kinds = FILTERS.get(show)
    if kinds is not None:
        return [item for item in items if item.kind in kinds][:SHOWN]
    latest_usage = next((item for item in items if item.kind == "usage"), None)
    return [item for item in items if item.kind != "usage" or item.problem or item is latest_usage][
        :SHOWN
    ]
