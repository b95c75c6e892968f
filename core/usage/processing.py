"""Usage processing, the worker side: claim stored reports and apply them.

`process_reports` keeps the latest snapshot per instance (core/usage/snapshots.py), each
customer's current device count and the 80 % / 100 % threshold crossings (core/usage/limits.py),
set-based and safe to run twice: a processed report is never claimed again, and a crash before
the commit leaves everything pending for the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.usage.limits import THRESHOLDS, device_limit, threshold_level
from core.usage.snapshots import current_devices, upsert_instance_snapshots
from models import Customer, Subscription, UsageAlert, UsageReport, utcnow


@dataclass(frozen=True, slots=True)
class ProcessResult:
    processed: int
    customers: int
    alerts: int


def _claim(session: Session, stmt: Select[tuple[int]]) -> list[int]:
    # SKIP LOCKED: reports another worker is processing are left to it, nobody waits. SQLite has
    # no row locks (it serialises writers) and SQLAlchemy drops the clause there.
    return list(session.scalars(stmt.with_for_update(skip_locked=True)))


def claim_reports(
    session: Session,
    *,
    report_ids: Sequence[int] | None = None,
    limit: int = 500,
    created_before: datetime | None = None,
) -> list[int]:
    stmt = select(UsageReport.id).where(UsageReport.processed_at.is_(None))
    if report_ids is not None:
        stmt = stmt.where(UsageReport.id.in_(list(report_ids)))
    if created_before is not None:
        stmt = stmt.where(UsageReport.created_at < created_before)
    # Oldest first, in the order of the (processed_at, created_at) index that serves this query.
    return _claim(session, stmt.order_by(UsageReport.created_at, UsageReport.id).limit(limit))


def _record_thresholds(
    session: Session, customer_ids: list[str], ids: list[int], now: datetime
) -> int:
    """Recompute each customer's current devices and record threshold crossings; alerts made."""
    current = current_devices(customer_ids, now=now)
    rows = session.execute(
        select(
            Customer.customer_id,
            Customer.usage_threshold_percent,
            Customer.plan_overrides,
            Subscription.plan,
            func.coalesce(current.c.active, 0).label("active"),
        )
        .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
        .outerjoin(current, current.c.customer_id == Customer.customer_id)
        .where(Customer.customer_id.in_(customer_ids))
    ).all()
    # The newest report of each customer in this batch: the one that caused a crossing.
    latest_report = dict(
        session.execute(
            select(UsageReport.customer_id, func.max(UsageReport.id))
            .where(UsageReport.id.in_(ids))
            .group_by(UsageReport.customer_id)
        ).all()
    )
    alerts: list[dict[str, Any]] = []
    for row in rows:
        limit = device_limit(row.plan, row.plan_overrides)
        active = int(row.active)
        level = threshold_level(active, limit)
        previous = row.usage_threshold_percent or 0
        if level == previous:
            continue
        if level > previous and limit is not None:
            alerts.extend(
                {
                    "customer_id": row.customer_id,
                    "threshold_percent": threshold,
                    "active_devices": active,
                    "device_limit": limit,
                    "plan": row.plan,
                    "report_id": latest_report.get(row.customer_id),
                    "created_at": now,
                }
                for threshold in THRESHOLDS
                if previous < threshold <= level
            )
        # Falling below a threshold re-arms it: the next rise is recorded again.
        session.execute(
            update(Customer)
            .where(Customer.customer_id == row.customer_id)
            .values(usage_threshold_percent=level, updated_at=now)
        )
    if alerts:
        session.execute(UsageAlert.__table__.insert(), alerts)
    return len(alerts)


def process_claimed(session: Session, ids: list[int], now: datetime | None = None) -> ProcessResult:
    """Process reports already claimed in this transaction (see `claim_reports`)."""
    if not ids:
        return ProcessResult(0, 0, 0)
    now = now or utcnow()
    customer_ids = sorted(
        session.scalars(
            select(UsageReport.customer_id).where(UsageReport.id.in_(ids)).distinct()
        ).all()
    )
    # Lock the customers first and in a fixed order: two batches touching the same customer (or
    # instance) then run one after the other instead of deadlocking, and the second one's sum
    # sees the first one's snapshots.
    session.execute(
        select(Customer.id)
        .where(Customer.customer_id.in_(customer_ids))
        .order_by(Customer.customer_id)
        .with_for_update()
    ).all()
    upsert_instance_snapshots(session, ids, now)
    alerts = _record_thresholds(session, customer_ids, ids, now)
    session.execute(
        update(UsageReport)
        .where(UsageReport.id.in_(ids))
        .values(processed_at=now, attempts=UsageReport.attempts + 1)
    )
    return ProcessResult(len(ids), len(customer_ids), alerts)


def process_reports(
    session: Session,
    *,
    report_ids: Sequence[int] | None = None,
    limit: int = 500,
    created_before: datetime | None = None,
    now: datetime | None = None,
) -> ProcessResult:
    """Claim pending reports (these ids, or any) and process them; already processed are skipped.

    Runs in the caller's transaction: commit afterwards. Idempotent: a processed report is never
    claimed again, and a crash before commit leaves everything pending for the next run.
    """
    ids = claim_reports(session, report_ids=report_ids, limit=limit, created_before=created_before)
    return process_claimed(session, ids, now)
