"""A scheduled job's run written as beat and the worker write it, at a chosen time."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db import session_scope
from core.operations import jobs
from core.settings import get_settings


def job_named(name: str) -> jobs.ScheduledJob:
    from workers.beat import scheduled_jobs

    return next(job for job in scheduled_jobs(get_settings()) if job.name == name)


def record_run(name: str, outcome: str, at: datetime, error: str | None = None) -> None:
    """A run of job `name` that started at `at` and ended a minute later with `outcome`."""
    job = job_named(name)
    with session_scope() as session:
        jobs.record_started(session, job, at=at)
        jobs.record_finished(
            session,
            job,
            outcome=outcome,
            started_at=at,
            error=error,
            at=at + timedelta(minutes=1),
        )
