"""Usage processing, the worker side: claim stored reports and apply them.

`process_reports` keeps the latest snapshot per instance (core/usage/snapshots.py), each
customer's current device count and the 80 % / 100 % threshold crossings (core/usage/limits.py),
set-based and safe to run twice: a processed report is never claimed again, and a crash before
the commit leaves everything pending for the next run.

A report that cannot be processed must not hold back the others: when a group fails for any
reason but a lost connection or a lock conflict (those are retried whole), its reports are
processed one by one, each failure is counted on its report, and after USAGE_MAX_ATTEMPTS
failures the report is quarantined: no longer claimed, listed by `billing usage --quarantined`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from core.settings import get_settings
from core.usage.days import utc_day_start
from core.usage.limits import THRESHOLDS, device_limit, threshold_level
from core.usage.rollups import rollup_late_reports
from core.usage.snapshots import current_devices, upsert_instance_snapshots
from models import Customer, Subscription, UsageAlert, UsageReport, utcnow


@dataclass(frozen=True, slots=True)
class ProcessResult:
    processed: int
    customers: int
    alerts: int
    # Reports whose processing failed this time, and those of them now quarantined.
    failed: int = 0
    quarantined: int = 0
    # The reports processed (not those that failed).
    report_ids: tuple[int, ...] = ()

    def __add__(self, other: ProcessResult) -> ProcessResult:
        return ProcessResult(
            self.processed + other.processed,
            self.customers + other.customers,
            self.alerts + other.alerts,
            self.failed + other.failed,
            self.quarantined + other.quarantined,
            self.report_ids + other.report_ids,
        )


# Failures a retry of the whole group can cure: the connection, a deadlock, a lock timeout.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_ERROR_LENGTH = 500


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
    """Lock pending reports for this transaction, oldest first."""
    stmt = select(UsageReport.id).where(
        UsageReport.processed_at.is_(None), UsageReport.quarantined_at.is_(None)
    )
    if report_ids is not None:
        stmt = stmt.where(UsageReport.id.in_(list(report_ids)))
    if created_before is not None:
        stmt = stmt.where(UsageReport.created_at < created_before)
    # Oldest first, in the order of the (processed_at, created_at) index that serves this query.
    return _claim(session, stmt.order_by(UsageReport.created_at, UsageReport.id).limit(limit))


def _record_thresholds(
    session: Session, customer_ids: list[str], latest_report: dict[str, int], now: datetime
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
    # Per customer of the batch: its newest report (the one that caused a crossing) and the
    # earliest time reported (a report of a past day may need rolling up).
    per_customer = session.execute(
        select(UsageReport.customer_id, func.max(UsageReport.id), func.min(UsageReport.reported_at))
        .where(UsageReport.id.in_(ids))
        .group_by(UsageReport.customer_id)
    ).all()
    customer_ids = sorted(customer_id for customer_id, _, _ in per_customer)
    latest_report = {customer_id: newest for customer_id, newest, _ in per_customer}
    earliest = min(reported_at for _, _, reported_at in per_customer)
    # Lock the customers first and in a fixed order: two batches touching the same customer (or
    # instance) then run one after the other instead of deadlocking, and the second one's sum
    # sees the first one's snapshots. NO KEY UPDATE: the ingress's foreign-key checks (KEY
    # SHARE) on the same customers do not wait for it.
    session.execute(
        select(Customer.id)
        .where(Customer.customer_id.in_(customer_ids))
        .order_by(Customer.customer_id)
        .with_for_update(key_share=True)
    ).all()
    upsert_instance_snapshots(session, ids, now)
    alerts = _record_thresholds(session, customer_ids, latest_report, now)
    if earliest < utc_day_start(now.astimezone(UTC).date()):
        rollup_late_reports(session, ids, now)
    session.execute(
        update(UsageReport)
        .where(UsageReport.id.in_(ids))
        .values(processed_at=now, attempts=UsageReport.attempts + 1)
    )
    return ProcessResult(len(ids), len(customer_ids), alerts, report_ids=tuple(ids))


def _process_isolated(session: Session, ids: list[int], now: datetime) -> ProcessResult:
    """`process_claimed` in a savepoint; a failure is counted on the reports (and quarantines
    those out of attempts) instead of ending the transaction."""
    try:
        with session.begin_nested():
            return process_claimed(session, ids, now)
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:  # noqa: BLE001 - whatever it is, it is this group's, not everyone's
        if len(ids) > 1:
            # Which report is it? Each alone: the others are processed, the culprit counted.
            results = [_process_isolated(session, [report_id], now) for report_id in ids]
            return sum(results, ProcessResult(0, 0, 0))
        return _record_failure(session, ids[0], error, now)


def _record_failure(
    session: Session, report_id: int, error: BaseException, now: datetime
) -> ProcessResult:
    max_attempts = get_settings().usage_max_attempts
    message = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    attempts = session.scalar(
        update(UsageReport)
        .where(UsageReport.id == report_id)
        .values(attempts=UsageReport.attempts + 1, last_error=message)
        .returning(UsageReport.attempts)
    )
    quarantined = attempts is not None and attempts >= max_attempts
    if quarantined:
        session.execute(
            update(UsageReport).where(UsageReport.id == report_id).values(quarantined_at=now)
        )
    return ProcessResult(0, 0, 0, failed=1, quarantined=int(quarantined))


def process_reports(
    session: Session,
    *,
    report_ids: Sequence[int] | None = None,
    limit: int = 500,
    created_before: datetime | None = None,
    fill_to: int = 0,
    behind_after: timedelta = timedelta(seconds=5),
    now: datetime | None = None,
) -> ProcessResult:
    """Claim pending reports (these ids, or any) and process them; already processed are skipped.

    `fill_to`: top the claim up, to that many, with pending reports stored more than
    `behind_after` ago, oldest first: reports the workers are behind on. A worker handed many
    small groups then drains a backlog in large batches (the tasks of the groups it took find
    nothing left to do), while a worker that keeps up processes each group alone.

    Runs in the caller's transaction: commit afterwards. Idempotent: a processed report is never
    claimed again, and a crash before commit leaves everything pending for the next run.
    """
    now = now or utcnow()
    ids = claim_reports(session, report_ids=report_ids, limit=limit, created_before=created_before)
    if fill_to > len(ids):
        behind = now - behind_after
        if created_before is not None:
            behind = min(behind, created_before)
        taken = set(ids)
        more = claim_reports(session, limit=fill_to - len(ids), created_before=behind)
        ids += [report_id for report_id in more if report_id not in taken]
    if not ids:
        return ProcessResult(0, 0, 0)
    return _process_isolated(session, ids, now)


@dataclass(frozen=True, slots=True)
class QuarantinedReport:
    report_id: int
    customer_id: str
    instance_id: str
    reported_at: datetime
    attempts: int
    quarantined_at: datetime
    last_error: str | None


def quarantined_reports(session: Session, *, limit: int = 100) -> list[QuarantinedReport]:
    """Reports set aside after failing USAGE_MAX_ATTEMPTS times, newest first."""
    rows = session.execute(
        select(
            UsageReport.id,
            UsageReport.customer_id,
            UsageReport.instance_id,
            UsageReport.reported_at,
            UsageReport.attempts,
            UsageReport.quarantined_at,
            UsageReport.last_error,
        )
        .where(UsageReport.quarantined_at.is_not(None))
        .order_by(UsageReport.quarantined_at.desc(), UsageReport.id.desc())
        .limit(limit)
    )
    return [QuarantinedReport(*row) for row in rows]


def count_quarantined(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(UsageReport)
            .where(UsageReport.quarantined_at.is_not(None))
        )
        or 0
    )
