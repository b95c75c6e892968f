"""Usage tasks: processing the reports the ingress stored (queue "usage"), the inbox sweeper,
and the daily rollup (queue "default")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from core.db import session_scope
from core.settings import get_settings
from core.usage import processing
from core.usage.rollups import begin_rollup, parse_day, previous_utc_day, rollup_day
from models import utcnow
from workers import task_names
from workers.celery_app import celery_app

# A lost connection or a deadlock victim is retried; if retries run out the sweeper picks it up.
RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}
# The sweeper stops after this many batches so one beat run never hogs a worker; the next run
# (a minute later) carries on.
MAX_SWEEP_BATCHES = 20


def _as_dict(result: processing.ProcessResult) -> dict[str, int]:
    return {
        "processed": result.processed,
        "customers": result.customers,
        "alerts": result.alerts,
        "failed": result.failed,
        "quarantined": result.quarantined,
    }


@celery_app.task(name=task_names.PROCESS_REPORT_BATCH, **RETRY_OPTIONS)
def process_report_batch(report_ids: list[int]) -> dict[str, int]:
    """Process the reports the ingress stored (already processed ones skip), topped up with
    other pending reports to USAGE_PROCESS_BATCH_SIZE: the ingress publishes a task per group
    it commits, and a worker that is behind drains them in large batches."""
    batch_size = get_settings().usage_process_batch_size
    with session_scope() as session:
        result = processing.process_reports(
            session, report_ids=report_ids, limit=len(report_ids), fill_to=batch_size
        )
    return _as_dict(result)


@celery_app.task(name=task_names.SWEEP_PENDING_REPORTS)
def sweep_pending_reports() -> dict[str, Any]:
    """The inbox sweeper: process reports whose task never ran (broker down, worker lost)."""
    settings = get_settings()
    cutoff = utcnow() - timedelta(seconds=settings.inbox_sweep_after_seconds)
    total = processing.ProcessResult(0, 0, 0)
    for _ in range(MAX_SWEEP_BATCHES):
        with session_scope() as session:
            result = processing.process_reports(
                session, limit=settings.usage_process_batch_size, created_before=cutoff
            )
        total += result
        if result.processed + result.failed < settings.usage_process_batch_size:
            break
    return _as_dict(total)


@celery_app.task(name=task_names.ROLLUP_USAGE_DAY)
def rollup_usage_day(day_iso: str | None = None) -> dict[str, object]:
    """Roll one UTC day of usage reports up into usage_daily (default: yesterday)."""
    day = parse_day(day_iso) if day_iso else previous_utc_day()
    # Two transactions, in this order (core/usage/rollups.py): from the first one's commit on,
    # processing rolls up late reports of the day itself.
    with session_scope() as session:
        begin_rollup(session, day)
    with session_scope() as session:
        result = rollup_day(session, day)
    return {
        "day": result.day.isoformat(),
        "rowsWritten": result.rows_written,
        "rowsTotal": result.rows_total,
    }
