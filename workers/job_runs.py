"""Beat and workers record each beat job's runs themselves (`core.operations.jobs`).

Beat notes when it sends a job (`before_task_publish`, only in the beat process); the worker
notes the start and the end (outcome, error, duration, the task's summary) of any run of a beat
job's task, whoever sent it (beat, `billing tasks run`). Recording never fails a task: a database
that cannot be reached is logged and the run goes on.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from functools import cache
from typing import Any

from celery import signals

from core.operations import jobs
from core.settings import get_settings
from models import utcnow

log = logging.getLogger(__name__)

_in_beat = False
_started: dict[str, datetime] = {}
_started_lock = threading.Lock()


@cache
def _jobs_by_task() -> dict[str, jobs.ScheduledJob]:
    from workers.beat import scheduled_jobs

    found: dict[str, jobs.ScheduledJob] = {}
    for job in scheduled_jobs(get_settings()):
        # Two entries of one task would be told apart by nothing: the first one names it.
        found.setdefault(job.task, job)
    return found


def job_of(task_name: str | None) -> jobs.ScheduledJob | None:
    return _jobs_by_task().get(task_name or "")


def _record(what: str, write: Any) -> None:
    from core.db import session_scope

    try:
        with session_scope() as session:
            write(session)
    except Exception as exc:  # noqa: BLE001 - the job's own work matters more than its record
        log.warning("scheduled job run not recorded (%s): %s", what, exc)


@signals.beat_init.connect
def _beat_started(**_: Any) -> None:
    global _in_beat
    _in_beat = True


@signals.before_task_publish.connect
def _job_sent(sender: str | None = None, **_: Any) -> None:
    job = job_of(sender) if _in_beat else None
    if job is not None:
        _record(f"{job.name} sent", lambda session: jobs.record_sent(session, job))


@signals.task_prerun.connect
def _job_started(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    job = job_of(getattr(sender, "name", None))
    if job is None or task_id is None:
        return
    now = utcnow()
    with _started_lock:
        _started[task_id] = now
    _record(f"{job.name} started", lambda session: jobs.record_started(session, job, at=now))


def _summary(retval: Any) -> str | None:
    try:
        return json.dumps(retval, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(retval)


@signals.task_postrun.connect
def _job_finished(
    sender: Any = None,
    task_id: str | None = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    job = job_of(getattr(sender, "name", None))
    if job is None or task_id is None:
        return
    with _started_lock:
        started = _started.pop(task_id, None)
    if state == "SUCCESS":
        outcome, error, result = jobs.SUCCEEDED, None, _summary(retval)
    else:
        outcome = jobs.RETRYING if state == "RETRY" else jobs.FAILED
        # A retry carries the error that caused it.
        cause = getattr(retval, "exc", None) or retval
        error, result = f"{type(cause).__name__}: {cause}", None
    _record(
        f"{job.name} finished",
        lambda session: jobs.record_finished(
            session, job, outcome=outcome, started_at=started, error=error, result=result
        ),
    )
