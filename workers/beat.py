"""The beat schedule: periodic jobs. Each job is a task that is safe to run twice."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from core.operations.jobs import ScheduledJob
from core.settings import Settings
from workers import task_names

_DAY = 86400.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        # Trials past their end become expired and their licenses say so.
        "expire-trials": {"task": task_names.EXPIRE_TRIALS, "schedule": 300.0},
        # Licenses of live subscriptions close to expiry (or signed by a retired key) are reissued.
        "renew-licenses": {"task": task_names.RENEW_LICENSES, "schedule": 3600.0},
        # Usage reports whose processing task never ran (broker down, worker lost) are processed.
        "sweep-usage-reports": {
            "task": task_names.SWEEP_PENDING_REPORTS,
            "schedule": float(settings.inbox_sweep_interval_seconds),
        },
        # Yesterday's usage reports into usage_daily, shortly after midnight UTC (safe twice).
        "rollup-usage-daily": {
            "task": task_names.ROLLUP_USAGE_DAY,
            "schedule": crontab(minute=15, hour=0),
        },
        # Device overage of the finished days to Stripe's meter, after the rollup (safe twice).
        "meter-usage-overage": {
            "task": task_names.METER_USAGE,
            "schedule": crontab(minute=45, hour=0),
        },
        # Meter events not delivered yet (Stripe down, a worker lost before recording Stripe's
        # answer) are sent again within hours, while Stripe still refuses a resent identifier as
        # a duplicate; one whose outcome stayed unknown longer is set aside for an operator.
        "send-meter-events": {
            "task": task_names.SEND_METER_EVENTS,
            "schedule": float(settings.overage_event_retry_interval_seconds),
        },
        # Stored Stripe events whose processing task never ran are enqueued again.
        "sweep-stripe-events": {
            "task": task_names.SWEEP_EVENTS,
            "schedule": float(settings.inbox_sweep_interval_seconds),
        },
        # Rows past retention (USAGE_REPORT_RETENTION_DAYS, STRIPE_EVENT_RETENTION_DAYS) removed in
        # small batches, after the rollup and metering of the night (safe twice).
        "prune-retention": {
            "task": task_names.PRUNE_RETENTION,
            "schedule": crontab(minute=30, hour=2),
        },
        # Stripe events of the last days that the webhook never delivered are stored and handled.
        "reconcile-stripe-events": {
            "task": task_names.RECONCILE_EVENTS,
            "schedule": 900.0,
        },
        # Live Stripe subscriptions compared with local rows; drift repaired (hourly: it lists
        # every known customer's subscriptions).
        "reconcile-stripe-subscriptions": {
            "task": task_names.RECONCILE_SUBSCRIPTIONS,
            "schedule": 3600.0,
        },
    }


def _every(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"every {int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"every {int(seconds // 60)} min"
    return f"every {seconds:g} s"


def _cron_interval(cron: crontab) -> tuple[float, str]:
    """The longest gap between two runs of a crontab that runs every day (a job is late only
    after twice that), and how it reads; a crontab limited to some days counts as weekly."""
    if len(cron.day_of_week) < 7 or len(cron.day_of_month) < 31 or len(cron.month_of_year) < 12:
        return 7 * _DAY, "weekly"
    minutes = sorted(h * 60 + m for h in cron.hour for m in cron.minute)
    gaps = [b - a for a, b in zip(minutes, minutes[1:], strict=False)]
    gaps.append(minutes[0] + 24 * 60 - minutes[-1])
    if len(minutes) == 1:
        hour, minute = divmod(minutes[0], 60)
        return _DAY, f"daily at {hour:02d}:{minute:02d}"
    return max(gaps) * 60.0, f"{len(minutes)} times a day"


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """The beat jobs with their intervals, for the job health the console and CLI show."""
    jobs = []
    for name, entry in beat_schedule(settings).items():
        when = entry["schedule"]
        if isinstance(when, crontab):
            interval, every = _cron_interval(when)
        else:
            seconds = when.run_every.total_seconds() if isinstance(when, schedule) else float(when)
            interval, every = seconds, _every(seconds)
        jobs.append(ScheduledJob(name, entry["task"], interval, every))
    return jobs
