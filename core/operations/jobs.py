"""Scheduled jobs: each beat job's last run, written by beat and the workers themselves.

Beat notes when it sends a job; the worker that runs it notes its start and its end (outcome,
error, duration, the task's small summary) through Celery signals (`workers/job_runs.py`). One
row per job, updated in place, so no Flower and no result backend is needed to answer "did last
night's rollup run?". A job that has not succeeded within twice its interval is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import dialect_insert
from models import JobRun, utcnow

RUNNING, SUCCEEDED, RETRYING, FAILED = "running", "succeeded", "retrying", "failed"
OUTCOMES = (RUNNING, SUCCEEDED, RETRYING, FAILED)
# A job is late when it has not succeeded for this many of its intervals.
LATE_AFTER_INTERVALS = 2
_RESULT_CHARS = 500
# When this process started: a job never run for twice its interval since then is late.
SERVICE_STARTED_AT = utcnow()
_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A beat job as the schedule defines it."""

    name: str
    task: str
    interval_seconds: float
    # How the schedule reads to a person: "every 5 min", "daily at 00:15".
    every: str


@dataclass(frozen=True, slots=True)
class JobStatus:
    job: ScheduledJob
    last_started_at: datetime | None
    last_finished_at: datetime | None
    outcome: str | None
    error: str | None
    duration_ms: int | None
    result: str | None
    last_succeeded_at: datetime | None
    failures_in_a_row: int
    # Why an operator should look (not succeeded within twice its interval), or None.
    warning: str | None

    @property
    def name(self) -> str:
        return self.job.name


def _upsert(session: Session, job: ScheduledJob, at: datetime, **values: object) -> None:
    insert = dialect_insert(session)
    statement = insert(JobRun).values(job=job.name, task=job.task, created_at=at, **values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[JobRun.job], set_={"task": job.task, **values}
        )
    )


def record_sent(session: Session, job: ScheduledJob, *, at: datetime | None = None) -> None:
    """Beat sent the job to the queue."""
    at = at or utcnow()
    _upsert(session, job, at, last_sent_at=at)


def record_started(session: Session, job: ScheduledJob, *, at: datetime | None = None) -> None:
    """A worker began running the job."""
    at = at or utcnow()
    _upsert(session, job, at, last_started_at=at, last_outcome=RUNNING)


def record_finished(
    session: Session,
    job: ScheduledJob,
    *,
    outcome: str,
    started_at: datetime | None,
    error: str | None = None,
    result: str | None = None,
    at: datetime | None = None,
) -> None:
    """A run ended: succeeded, failed, or failed and will be retried (`retrying`)."""
    if outcome not in (SUCCEEDED, RETRYING, FAILED):
        raise ValueError(f"a finished run is succeeded, retrying or failed, not {outcome!r}")
    finished = at or utcnow()
    values: dict[str, object] = {
        "last_finished_at": finished,
        "last_outcome": outcome,
        "last_error": error[:_ERROR_CHARS] if error else None,
        "last_duration_ms": (
            int((finished - started_at).total_seconds() * 1000) if started_at else None
        ),
    }
    if outcome == SUCCEEDED:
        values.update(
            last_succeeded_at=finished,
            failures_in_a_row=0,
            last_result=result[:_RESULT_CHARS] if result else None,
        )
    else:
        values["failures_in_a_row"] = JobRun.failures_in_a_row + 1
    # A new row's counter starts from its insert values; an existing one counts on.
    insert = dialect_insert(session)
    row = {"job": job.name, "task": job.task, "created_at": finished, **values}
    row["failures_in_a_row"] = 0 if outcome == SUCCEEDED else 1
    if started_at:
        row.setdefault("last_started_at", started_at)
    session.execute(
        insert(JobRun)
        .values(**row)
        .on_conflict_do_update(index_elements=[JobRun.job], set_={"task": job.task, **values})
    )


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 90:
        return f"{max(seconds, 0)} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _warning(
    job: ScheduledJob, row: JobRun | None, first_seen: datetime | None, now: datetime
) -> str | None:
    """Why the job needs a look, or None. A job never recorded is late once the jobs have been
    recorded, or this service has run, for twice its interval (a fresh deployment's nightly job
    is not late at noon; beat not running is)."""
    late_after = timedelta(seconds=job.interval_seconds * LATE_AFTER_INTERVALS)
    if row is None:
        if first_seen is None:
            return "never run: is beat running?"
        if now - first_seen > late_after:
            return f"never run, though jobs have been recorded for {_ago(now - first_seen)}"
        if now - SERVICE_STARTED_AT > late_after:
            return f"never run since the service started {_ago(now - SERVICE_STARTED_AT)} ago"
        return None
    since = row.last_succeeded_at or row.created_at
    if now - since <= late_after:
        return None
    if row.last_succeeded_at is None:
        return f"no success since it was first seen {_ago(now - since)} ago"
    return (
        f"no success within {LATE_AFTER_INTERVALS} intervals (last success {_ago(now - since)} ago)"
    )


def job_statuses(
    session: Session, jobs: list[ScheduledJob], *, now: datetime | None = None
) -> list[JobStatus]:
    """Each job's last run, in the schedule's order, with a warning where one is due."""
    now = now or utcnow()
    rows = {row.job: row for row in session.scalars(select(JobRun))}
    first_seen = min((row.created_at for row in rows.values()), default=None)
    statuses = []
    for job in jobs:
        row = rows.get(job.name)
        statuses.append(
            JobStatus(
                job=job,
                last_started_at=row.last_started_at if row else None,
                last_finished_at=row.last_finished_at if row else None,
                outcome=row.last_outcome if row else None,
                error=row.last_error if row else None,
                duration_ms=row.last_duration_ms if row else None,
                result=row.last_result if row else None,
                last_succeeded_at=row.last_succeeded_at if row else None,
                failures_in_a_row=row.failures_in_a_row if row else 0,
                warning=_warning(job, row, first_seen, now),
            )
        )
    return statuses


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """ "12 min ago", or "never"."""
    if moment is None:
        return "never"
    return f"{_ago((now or utcnow()) - moment)} ago"
