"""Rollups (queue "default"): the daily usage rollup, for yesterday on beat or any past day."""

from __future__ import annotations

from core.usage_rollups import parse_day, previous_utc_day, rollup_day
from models import session_scope
from workers.celery_app import celery_app


@celery_app.task(name="tasks.rollups.rollup_usage_day")
def rollup_usage_day(day_iso: str | None = None) -> dict[str, object]:
    """Roll one UTC day of usage reports up into usage_daily (default: yesterday)."""
    day = parse_day(day_iso) if day_iso else previous_utc_day()
    with session_scope() as session:
        result = rollup_day(session, day)
    return {
        "day": result.day.isoformat(),
        "rowsWritten": result.rows_written,
        "rowsTotal": result.rows_total,
    }
