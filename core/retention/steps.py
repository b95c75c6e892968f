"""The prune steps, one per table: what goes, counted (a dry run) and removed in small batches.

Each step removes rows in batches of PRUNE_BATCH_SIZE, one short transaction each, taking row
locks on old rows only (SKIP LOCKED: it never waits for a row someone else holds, and the
ingress only inserts new rows), so nothing the ingress or the workers do waits behind it.
Every step is idempotent: a rerun finds nothing left to remove. A new table to prune is one
more `PruneStep` in `PRUNE_STEPS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from core.billing.event_customers import customer_of_event
from core.billing.inbox import IGNORED, PROCESSED
from core.console.sessions import expired_sessions
from core.db import Transaction
from core.retention_policy import event_payloads_kept_since, first_kept_report_day
from core.usage.days import as_date, utc_day, utc_day_start
from models import ConsoleSession, StripeEvent, UsageReport
from models.usage import UsageRollupDay


@dataclass(frozen=True, slots=True)
class PruneStep:
    table: str
    # What goes, in words, for `billing db prune`.
    what: str
    # Rows that would go now (the dry run).
    count: Callable[[Session, datetime], int]
    # Removes them, in batches of `batch_size`, one transaction each; rows removed.
    prune: Callable[[Transaction, datetime, int], int]


# -- usage_reports --------------------------------------------------------------------------------

# A report goes once processed, or quarantined (a finished quarantine entry); a pending one waits
# for the workers, however old.
_FINISHED_REPORT = or_(
    UsageReport.processed_at.is_not(None), UsageReport.quarantined_at.is_not(None)
)


def _prunable_days(session: Session, now: datetime) -> list[date]:
    """Days past retention whose rollup finished and that still have reports, oldest first."""
    cutoff = first_kept_report_day(now)
    oldest = session.scalar(
        select(func.min(UsageReport.reported_at)).where(
            UsageReport.reported_at < utc_day_start(cutoff), _FINISHED_REPORT
        )
    )
    if oldest is None:
        return []
    days = session.scalars(
        select(UsageRollupDay.day)
        .where(
            UsageRollupDay.day >= oldest.astimezone(UTC).date(),
            UsageRollupDay.day < cutoff,
            UsageRollupDay.finished_at.is_not(None),
        )
        .order_by(UsageRollupDay.day)
    )
    return [as_date(day) for day in days]


def _count_reports(session: Session, now: datetime) -> int:
    report_day = utc_day(session, UsageReport.reported_at)
    count = session.scalar(
        select(func.count())
        .select_from(UsageReport)
        .join(UsageRollupDay, UsageRollupDay.day == report_day)
        .where(
            UsageReport.reported_at < utc_day_start(first_kept_report_day(now)),
            UsageRollupDay.finished_at.is_not(None),
            _FINISHED_REPORT,
        )
    )
    return int(count or 0)


def _freeze_day(session: Session, day: date, now: datetime) -> None:
    """The day's usage_daily rows are final from here on (core/usage/rollups.py): set under the
    day's row lock, after any late rollup of it in flight has committed."""
    session.execute(
        update(UsageRollupDay)
        .where(UsageRollupDay.day == day, UsageRollupDay.pruned_at.is_(None))
        .values(pruned_at=now)
    )


def _delete_report_batch(
    session: Session, day: date, after: datetime, batch_size: int
) -> list[Any]:
    """One batch of the day's finished reports from `after` on (keyset: never rescans the
    index entries earlier batches removed); their reported_at, to carry on from."""
    batch = (
        select(UsageReport.id)
        .where(
            UsageReport.reported_at >= after,
            UsageReport.reported_at < utc_day_start(day + timedelta(days=1)),
            _FINISHED_REPORT,
        )
        .order_by(UsageReport.reported_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    removed = session.execute(
        UsageReport.__table__.delete()
        .where(UsageReport.__table__.c.id.in_(batch.scalar_subquery()))
        .returning(UsageReport.__table__.c.reported_at)
    )
    return list(removed.scalars())


def _prune_reports(transaction: Transaction, now: datetime, batch_size: int) -> int:
    with transaction() as session:
        days = _prunable_days(session, now)
    removed = 0
    for day in days:
        with transaction() as session:
            _freeze_day(session, day, now)
        after = utc_day_start(day)
        while True:
            with transaction() as session:
                batch = _delete_report_batch(session, day, after, batch_size)
            removed += len(batch)
            if len(batch) < batch_size:
                break
            after = max(batch)
    return removed


# -- stripe_events --------------------------------------------------------------------------------


def _payload_kept(now: datetime) -> Any:
    return (
        StripeEvent.status.in_((PROCESSED, IGNORED)),
        StripeEvent.processed_at < event_payloads_kept_since(now),
        StripeEvent.payload_pruned_at.is_(None),
    )


def _count_event_payloads(session: Session, now: datetime) -> int:
    count = session.scalar(select(func.count()).select_from(StripeEvent).where(*_payload_kept(now)))
    return int(count or 0)


_SET_CUSTOMER = (
    update(StripeEvent.__table__)
    .where(StripeEvent.__table__.c.id == bindparam("row_id"))
    .values(customer_id=bindparam("customer"))
)


def _prune_event_payloads(transaction: Transaction, now: datetime, batch_size: int) -> int:
    removed = 0
    while True:
        with transaction() as session:
            rows = session.execute(
                select(StripeEvent.id, StripeEvent.payload, StripeEvent.customer_id)
                .where(*_payload_kept(now))
                .order_by(StripeEvent.processed_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            # The payload is the last chance to learn whose event it was (one rule:
            # core.billing.event_customers); a handled event has its customer already.
            unowned = [
                {"row_id": row.id, "customer": customer}
                for row in rows
                if row.customer_id is None
                and (customer := customer_of_event(session, row.payload)) is not None
            ]
            if unowned:
                session.execute(_SET_CUSTOMER, unowned)
            if rows:
                session.execute(
                    update(StripeEvent)
                    .where(StripeEvent.id.in_([row.id for row in rows]))
                    .values(payload=null(), payload_pruned_at=now)
                )
        removed += len(rows)
        if len(rows) < batch_size:
            return removed


# -- console_sessions ----------------------------------------------------------------------------


def _count_console_sessions(session: Session, now: datetime) -> int:
    count = session.scalar(
        select(func.count()).select_from(ConsoleSession).where(expired_sessions(now))
    )
    return int(count or 0)


def _prune_console_sessions(transaction: Transaction, now: datetime, batch_size: int) -> int:
    removed = 0
    while True:
        batch = (
            select(ConsoleSession.id)
            .where(expired_sessions(now))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        with transaction() as session:
            gone = session.execute(
                delete(ConsoleSession).where(ConsoleSession.id.in_(batch.scalar_subquery()))
            ).rowcount
        removed += gone
        if gone < batch_size:
            return removed


PRUNE_STEPS: tuple[PruneStep, ...] = (
    PruneStep(
        "usage_reports",
        "processed or quarantined reports of rolled-up days older than USAGE_REPORT_RETENTION_DAYS",
        _count_reports,
        _prune_reports,
    ),
    PruneStep(
        "stripe_events",
        "payloads of processed events older than STRIPE_EVENT_RETENTION_DAYS (row kept)",
        _count_event_payloads,
        _prune_event_payloads,
    ),
    PruneStep(
        "console_sessions",
        "console sessions past their idle or absolute timeout",
        _count_console_sessions,
        _prune_console_sessions,
    ),
)
