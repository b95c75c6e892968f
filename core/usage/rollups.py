"""The daily usage rollup: UTC days of reports into `usage_daily`, set-based, idempotent.

INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE, on PostgreSQL and SQLite alike. The
window is a range on `reported_at` ([day 00:00, next day 00:00) UTC) so the (customer_id,
reported_at) index serves it. A row is only rewritten when its numbers changed, so running the
rollup twice changes nothing (not even `computed_at`). Rows are never deleted: the rollup
outlives the raw reports.

A day's rollup happens in two steps, each its own transaction (the task runs them in order):
`begin_rollup` records that the day is taken on, then `rollup_day` writes its rows and marks it
finished. From the first step on, processing rolls up every report of that day it handles
(`rollup_late_reports`), so a report that arrives late still reaches usage_daily; from the
second on, the viewer reads the day from usage_daily (core/usage/history.py). The marker row
is locked by both sides (FOR UPDATE here, FOR SHARE in processing), so a late report is either
in the full rollup's snapshot or rolled up by its processing, never neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Float, cast, func, literal, or_, select, tuple_, update
from sqlalchemy.orm import Session

from core.db import dialect_insert
from core.errors import InvalidInputError
from core.usage.days import as_date, utc_day, utc_day_start
from models import UsageDaily, UsageReport, UTCDateTime, utcnow
from models.usage import UsageRollupDay


@dataclass(frozen=True, slots=True)
class RollupResult:
    day: date
    # Rows inserted or changed by this run (0 when the day was already up to date).
    rows_written: int
    # Rows the day has in usage_daily after the run.
    rows_total: int
    # The day's raw reports were pruned: its usage_daily rows are final and were left as they are.
    pruned: bool = False


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise InvalidInputError(f"day must be YYYY-MM-DD, not {value!r}", field="day") from None


def previous_utc_day(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(UTC).date() - timedelta(days=1)


def begin_rollup(session: Session, day: date, *, now: datetime | None = None) -> None:
    """Step 1: the day is taken on (commit before `rollup_day`). Safe to repeat."""
    stmt = dialect_insert(session)(UsageRollupDay).values(day=day, started_at=now or utcnow())
    session.execute(stmt.on_conflict_do_nothing(index_elements=[UsageRollupDay.day]))


def rollup_day(
    session: Session, day: date, *, now: datetime | None = None, customer_id: str | None = None
) -> RollupResult:
    """Step 2: roll `day` (UTC) up into usage_daily and mark it finished; the caller commits.

    With `customer_id`: that customer's rows only (a plan change metering their finished days
    before the nightly run does, `core.billing.metering.runs.meter_customer`), under the same
    lock; the day is not marked finished, as the other customers' rows are not written."""
    now = now or utcnow()
    begin_rollup(session, day, now=now)
    # Waits for processing that is rolling up late reports of this day (see the docstring).
    pruned_at = session.scalar(
        select(UsageRollupDay.pruned_at).where(UsageRollupDay.day == day).with_for_update()
    )
    written = 0
    if pruned_at is None:
        written = _upsert_days(session, day, instances=None, now=now, customer_id=customer_id)
        if customer_id is None:
            session.execute(
                update(UsageRollupDay).where(UsageRollupDay.day == day).values(finished_at=now)
            )
    rows = select(func.count()).select_from(UsageDaily).where(UsageDaily.day == day)
    if customer_id is not None:
        rows = rows.where(UsageDaily.customer_id == customer_id)
    total = session.scalar(rows)
    return RollupResult(day, written, int(total or 0), pruned=pruned_at is not None)


def rollup_late_reports(session: Session, report_ids: Sequence[int], now: datetime) -> int:
    """Roll up the (customer, instance, day) groups of these reports whose day the rollup has
    taken on already (the others wait for their day's rollup); rows written."""
    today = now.astimezone(UTC).date()
    report_day = utc_day(session, UsageReport.reported_at)
    # Only reports of days taken on come back (normally none: reports are of today); their day
    # rows are share-locked against a concurrent full rollup of the day.
    touched = session.execute(
        select(UsageReport.customer_id, UsageReport.instance_id, UsageRollupDay.day)
        .join(UsageRollupDay, UsageRollupDay.day == report_day)
        .where(
            UsageReport.id.in_(list(report_ids)),
            UsageReport.reported_at < utc_day_start(today),
            UsageRollupDay.pruned_at.is_(None),
        )
        .order_by(UsageRollupDay.day)
        .with_for_update(read=True, of=UsageRollupDay)
    ).all()
    by_day: dict[date, set[tuple[str, str]]] = {}
    for customer_id, instance_id, day in touched:
        by_day.setdefault(as_date(day), set()).add((customer_id, instance_id))
    return sum(_upsert_days(session, day, instances=by_day[day], now=now) for day in by_day)


def _upsert_days(
    session: Session,
    day: date,
    *,
    instances: Iterable[tuple[str, str]] | None,
    now: datetime,
    customer_id: str | None = None,
) -> int:
    start = utc_day_start(day)
    source = (
        select(
            UsageReport.customer_id,
            UsageReport.instance_id,
            literal(day, UsageDaily.day.type),
            func.count(),
            func.min(UsageReport.active_devices),
            cast(func.avg(UsageReport.active_devices), Float),
            func.sum(UsageReport.active_devices),
            func.max(UsageReport.active_devices),
            func.max(UsageReport.total_devices),
            literal(now, UTCDateTime),
        )
        .where(UsageReport.reported_at >= start, UsageReport.reported_at < start + timedelta(1))
        .group_by(UsageReport.customer_id, UsageReport.instance_id)
    )
    if customer_id is not None:
        source = source.where(UsageReport.customer_id == customer_id)
    if instances is not None:
        source = source.where(
            tuple_(UsageReport.customer_id, UsageReport.instance_id).in_(sorted(instances))
        )
    columns = ["customer_id", "instance_id", "day", "reports", "min_active", "avg_active"]
    columns += ["sum_active", "max_active", "max_total", "computed_at"]
    stmt = dialect_insert(session)(UsageDaily).from_select(columns, source)
    changed = [
        getattr(UsageDaily, name).is_distinct_from(getattr(stmt.excluded, name))
        for name in columns[3:-1]
    ]
    stmt = stmt.on_conflict_do_update(
        index_elements=[UsageDaily.customer_id, UsageDaily.instance_id, UsageDaily.day],
        set_={name: getattr(stmt.excluded, name) for name in columns[3:]},
        where=or_(*changed),
    )
    return max(0, session.execute(stmt).rowcount or 0)
