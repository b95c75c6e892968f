from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cli.common import console, run_task
from workers import task_names

if TYPE_CHECKING:
    from core.operations.jobs import JobStatus

app = typer.Typer(help="Enqueue tasks and look at them.", no_args_is_help=True)
run_app = typer.Typer(help="Run a scheduled job now.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@app.command()
def ping(timeout: float = typer.Option(None, help="Seconds to wait for a worker")) -> None:
    """Enqueue a ping task and wait for a worker to answer it."""
    answer = run_task(task_names.PING, timeout=timeout)
    console.print(f"✅ pong from worker on {answer['host']}")


@app.command()
def status(task_id: str) -> None:
    """Show a task's state (and its result or error when it has one)."""
    from celery.result import AsyncResult

    from workers.celery_app import celery_app

    result = AsyncResult(task_id, app=celery_app)
    console.print(f"Task:   {task_id}")
    console.print(f"State:  {result.state}")
    if result.ready():
        console.print(f"Result: {result.result!r}")


JOBS_RULE = "─" * 120


@app.command()
def jobs() -> None:
    """Each scheduled (beat) job's last run: outcome, how long ago, how long it took, how often
    it runs, and a warning when it has not succeeded within twice its interval."""
    from cli.common import db_session, print_table
    from core.operations.jobs import ago, job_statuses
    from core.settings import get_settings
    from workers.beat import scheduled_jobs

    with db_session() as session:
        statuses = job_statuses(session, scheduled_jobs(get_settings()))
    columns = [("Job", 31), ("Last run", 14), ("Outcome", 10), ("Took", -8), ("Runs", 16)]
    print_table(
        f"{len(statuses)} scheduled job(s):",
        [*columns, ("Warning / error", 0)],
        (
            (
                status.name,
                ago(status.last_started_at),
                status.outcome or "-",
                f"{status.duration_ms / 1000:.1f} s" if status.duration_ms is not None else "-",
                status.job.every,
                _job_note(status),
            )
            for status in statuses
        ),
        JOBS_RULE,
    )
    late = [status.name for status in statuses if status.warning]
    if late:
        console.print(f"⚠️  {len(late)} job(s) need a look: {', '.join(late)}")


def _job_note(status: JobStatus) -> str:
    from core.operations.jobs import SUCCEEDED

    notes = [f"⚠ {status.warning}"] if status.warning else []
    if status.error and status.outcome != SUCCEEDED:
        notes.append(status.error.splitlines()[0][:80])
    return "; ".join(notes)


@run_app.command("rollup")
def rollup(
    day: str = typer.Option(None, "--day", help="UTC day as YYYY-MM-DD (default: yesterday)"),
) -> None:
    """Roll one day of usage reports up into usage_daily (safe to run again)."""
    from cli.common import fail
    from core.errors import InvalidInputError
    from core.usage.rollups import parse_day, previous_utc_day

    try:
        chosen = parse_day(day) if day else previous_utc_day()
    except InvalidInputError as exc:
        raise fail(exc.message) from exc
    answer = run_task(task_names.ROLLUP_USAGE_DAY, chosen.isoformat())
    console.print(
        f"✅ usage of {answer['day']} rolled up: {answer['rowsTotal']} instance-day row(s), "
        f"{answer['rowsWritten']} written by this run"
    )


@run_app.command("meter-usage")
def meter_usage(
    day: str = typer.Option(
        None,
        "--day",
        help="A finished UTC day as YYYY-MM-DD (default: yesterday and the days it re-checks)",
    ),
) -> None:
    """Send device overage of a finished day to Stripe's meter (safe to run again)."""
    from cli.common import fail
    from core.billing.metering.days import meterable_day
    from core.errors import InvalidInputError
    from core.usage.rollups import parse_day

    try:
        chosen = meterable_day(parse_day(day)).isoformat() if day else None
    except InvalidInputError as exc:
        raise fail(exc.message) from exc
    answer = run_task(task_names.METER_USAGE, *([chosen] if chosen else []))
    if "skipped" in answer:
        raise fail(f"overage not metered: {answer['skipped']}")
    for metered_day in answer["days"]:
        console.print(
            f"✅ overage of {metered_day}: {answer['deviceDays'][metered_day]} billable "
            "device-day(s) recorded for Stripe"
        )
    console.print(
        f"   {answer['recorded']} new meter event(s); {answer['sent']} sent to Stripe, "
        f"{answer['unsent']} not yet (sent again by the task's retry or the hourly resend)"
    )
    if answer.get("unconfirmed"):
        console.print(
            f"⚠️  {answer['unconfirmed']} of unknown outcome for too long, not resent: "
            "`billing stripe meter-events --unconfirmed`, then `billing stripe meter-settle`"
        )
    if answer.get("failedForGood"):
        console.print(
            f"⚠️  {answer['failedForGood']} refused by Stripe for good and no longer sent: "
            "`billing stripe meter-events --failed`, then `billing stripe meter-retry`"
        )
