"""The daily usage rollup: one UTC day of reports into `usage_daily`, in one statement.

INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE, on PostgreSQL and SQLite alike. The
window is a range on `reported_at` ([day 00:00, next day 00:00) UTC) so the (customer_id,
reported_at) index serves it. A row is only rewritten when its numbers changed, so running the
rollup twice changes nothing (not even `computed_at`), and a rerun after late reports arrived
brings the day up to date. Rows are never deleted: the rollup outlives the raw reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Float, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError
from core.usage.ingest import dialect_insert
from models import UsageDaily, UsageReport, UTCDateTime, utcnow


@dataclass(frozen=True, slots=True)
class RollupResult:
    day: date
    # Rows inserted or changed by this run (0 when the day was already up to date).
    rows_written: int
    # Rows the day has in usage_daily after the run.
    rows_total: int


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise InvalidInputError(f"day must be YYYY-MM-DD, not {value!r}", field="day") from None


def previous_utc_day(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(UTC).date() - timedelta(days=1)


def rollup_day(session: Session, day: date, *, now: datetime | None = None) -> RollupResult:
    """Roll `day` (UTC) up into usage_daily; the caller commits."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    source = (
        select(
            UsageReport.customer_id,
            UsageReport.instance_id,
            literal(day, UsageDaily.day.type),
            func.count(),
            func.min(UsageReport.active_devices),
            cast(func.avg(UsageReport.active_devices), Float),
            func.max(UsageReport.active_devices),
            func.max(UsageReport.total_devices),
            literal(now or utcnow(), UTCDateTime),
        )
        .where(UsageReport.reported_at >= start, UsageReport.reported_at < end)
        .group_by(UsageReport.customer_id, UsageReport.instance_id)
    )
    columns = ["customer_id", "instance_id", "day", "reports", "min_active", "avg_active"]
    columns += ["max_active", "max_total", "computed_at"]
    insert = dialect_insert(session)
    stmt = insert(UsageDaily).from_select(columns, source)
    changed = [
        UsageDaily.reports.is_distinct_from(stmt.excluded.reports),
        UsageDaily.min_active.is_distinct_from(stmt.excluded.min_active),
        UsageDaily.avg_active.is_distinct_from(stmt.excluded.avg_active),
        UsageDaily.max_active.is_distinct_from(stmt.excluded.max_active),
        UsageDaily.max_total.is_distinct_from(stmt.excluded.max_total),
    ]
    stmt = stmt.on_conflict_do_update(
        index_elements=[UsageDaily.customer_id, UsageDaily.instance_id, UsageDaily.day],
        set_={name: getattr(stmt.excluded, name) for name in columns[3:]},
        where=or_(*changed),
    )
    written = session.execute(stmt).rowcount or 0
    total = session.scalar(
        select(func.count()).select_from(UsageDaily).where(UsageDaily.day == day)
    )
    return RollupResult(day=day, rows_written=max(0, written), rows_total=int(total or 0))
