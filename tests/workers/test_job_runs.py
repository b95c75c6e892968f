"""Beat jobs record their own runs: a real worker runs a job's task, and `billing tasks jobs`
shows its last run, outcome and interval, with a warning once it has not succeeded within twice
its interval."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from typer.testing import CliRunner

from cli.main import app
from core.db import session_scope
from core.operations import jobs
from core.settings import get_settings
from models import JobRun, utcnow
from tests.helpers.job_runs import job_named, record_run
from tests.helpers.waiting import wait_until
from workers.beat import scheduled_jobs

runner = CliRunner()


def _row(job: str) -> JobRun | None:
    with session_scope() as session:
        row = session.scalar(select(JobRun).where(JobRun.job == job))
        if row is not None:
            session.expunge(row)
        return row


def _finished(job: str, outcome: str) -> JobRun | None:
    row = _row(job)
    return row if row is not None and row.last_outcome == outcome else None


def test_a_worker_records_a_beat_jobs_success_and_failure(celery_worker) -> None:
    from tasks.usage import rollup_usage_day

    rollup_usage_day.apply_async(args=["2026-11-30"]).get(timeout=20)
    done = wait_until(lambda: _finished("rollup-usage-daily", jobs.SUCCEEDED))
    assert done.task == "tasks.usage.rollup_usage_day"
    assert done.last_started_at is not None and done.last_finished_at is not None
    assert done.last_duration_ms is not None and done.last_duration_ms >= 0
    assert done.last_succeeded_at == done.last_finished_at
    assert '"day": "2026-11-30"' in (done.last_result or "")
    assert done.failures_in_a_row == 0

    # The same job fails: the error is kept, the last success stays where it was.
    rollup_usage_day.apply_async(args=["not-a-day"]).get(timeout=20, propagate=False)
    failed = wait_until(lambda: _finished("rollup-usage-daily", jobs.FAILED))
    assert "not-a-day" in (failed.last_error or "")
    assert failed.last_succeeded_at == done.last_succeeded_at
    assert failed.failures_in_a_row == 1


def test_tasks_that_are_no_beat_job_are_not_recorded(celery_worker) -> None:
    from tasks.maintenance import ping

    ping.apply_async().get(timeout=20)
    with session_scope() as session:
        assert session.scalars(select(JobRun.job).where(JobRun.task.like("%ping%"))).all() == []


def _status(name: str) -> jobs.JobStatus:
    with session_scope() as session:
        statuses = jobs.job_statuses(session, scheduled_jobs(get_settings()))
    return next(status for status in statuses if status.name == name)


def test_a_job_without_success_within_twice_its_interval_is_flagged() -> None:
    job = job_named("renew-licenses")
    assert job.interval_seconds == 3600 and job.every == "every 1 h"
    assert _status("renew-licenses").warning == "never run: is beat running?"
    with session_scope() as session:
        jobs.record_sent(session, job_named("expire-trials"), at=utcnow() - timedelta(minutes=130))
    # Jobs have been recorded for 130 minutes: an hourly job never run is late, a daily one not.
    assert _status("renew-licenses").warning == (
        "never run, though jobs have been recorded for 2 h"
    )
    assert _status("rollup-usage-daily").warning is None
    with session_scope() as session:
        session.execute(delete(JobRun))

    now = utcnow()
    record_run("renew-licenses", jobs.SUCCEEDED, now - timedelta(minutes=90))
    # 89 minutes since its success: within two hourly intervals.
    assert _status("renew-licenses").warning is None

    error = "StripeUnavailableError: Stripe answered 503"
    record_run("renew-licenses", jobs.FAILED, now - timedelta(minutes=30), error)
    status = _status("renew-licenses")
    assert status.outcome == jobs.FAILED and status.warning is None

    with session_scope() as session:
        row = session.get(JobRun, "renew-licenses")
        assert row is not None
        row.last_succeeded_at = now - timedelta(hours=3)
    status = _status("renew-licenses")
    assert status.warning == "no success within 2 intervals (last success 3 h ago)"

    shown = runner.invoke(app, ["tasks", "jobs"])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if "renew-licenses" in line)
    assert "30 min ago" in line and "failed" in line and "every 1 h" in line
    assert "no success within 2 intervals" in line and "Stripe answered 503" in line
    assert "rollup-usage-daily" in shown.output and "daily at 00:15" in shown.output
    assert "job(s) need a look" in shown.output


def test_beat_and_a_worker_record_a_jobs_run_end_to_end(celery_worker) -> None:
    """`billing beat` as its own process sends the sweepers every second; the worker runs them."""
    from tests.helpers.processes import billing_command, running

    with running(billing_command("beat"), env={"INBOX_SWEEP_INTERVAL_SECONDS": "1"}):
        swept = wait_until(
            lambda: (
                (row := _finished("sweep-stripe-events", jobs.SUCCEEDED))
                and row.last_sent_at is not None
                and row
            ),
            timeout=60,
        )
    # Beat noted the send, the worker the start and the end (the next send may come before
    # this run's end, so the times are not compared).
    assert swept.last_started_at is not None and swept.last_finished_at is not None
    assert swept.last_result == '{"enqueued": 0, "found": 0}'
