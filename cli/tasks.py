from __future__ import annotations

import typer

from cli.common import console, run_task

app = typer.Typer(help="Enqueue tasks and look at them.", no_args_is_help=True)
run_app = typer.Typer(help="Run a scheduled job now.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@app.command()
def ping(timeout: float = typer.Option(None, help="Seconds to wait for a worker")) -> None:
    """Enqueue a ping task and wait for a worker to answer it."""
    from tasks.maintenance import ping as ping_task

    answer = run_task(ping_task, timeout=timeout)
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


@run_app.command("rollup")
def rollup(
    day: str = typer.Option(None, "--day", help="UTC day as YYYY-MM-DD (default: yesterday)"),
) -> None:
    """Roll one day of usage reports up into usage_daily (safe to run again)."""
    from cli.common import fail
    from core.errors import InvalidInputError
    from core.usage.rollups import parse_day, previous_utc_day
    from tasks.usage import rollup_usage_day

    try:
        chosen = parse_day(day) if day else previous_utc_day()
    except InvalidInputError as exc:
        raise fail(exc.message) from exc
    answer = run_task(rollup_usage_day, chosen.isoformat())
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
    from tasks.billing import meter_usage as meter_usage_task

    try:
        chosen = meterable_day(parse_day(day)).isoformat() if day else None
    except InvalidInputError as exc:
        raise fail(exc.message) from exc
    answer = run_task(meter_usage_task, *([chosen] if chosen else []))
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
