"""The beat schedule: periodic jobs. Each job is a task that is safe to run twice."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from core.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        # Trials past their end become expired and their licenses say so.
        "expire-trials": {"task": "tasks.billing.expire_trials", "schedule": 300.0},
        # Licenses of live subscriptions close to expiry (or signed by a retired key) are reissued.
        "renew-licenses": {"task": "tasks.licenses.renew_licenses", "schedule": 3600.0},
        # Usage reports whose processing task never ran (broker down, worker lost) are processed.
        "sweep-usage-reports": {
            "task": "tasks.usage.sweep_pending_reports",
            "schedule": float(settings.inbox_sweep_interval_seconds),
        },
        # Yesterday's usage reports into usage_daily, shortly after midnight UTC (safe twice).
        "rollup-usage-daily": {
            "task": "tasks.usage.rollup_usage_day",
            "schedule": crontab(minute=15, hour=0),
        },
        # Device overage of the finished days to Stripe's meter, after the rollup (safe twice).
        "meter-usage-overage": {
            "task": "tasks.billing.meter_usage",
            "schedule": crontab(minute=45, hour=0),
        },
        # Meter events not delivered yet (Stripe down, a worker lost before recording Stripe's
        # answer) are sent again within hours, while Stripe still refuses a resent identifier as
        # a duplicate; one whose outcome stayed unknown longer is set aside for an operator.
        "send-meter-events": {
            "task": "tasks.billing.send_meter_events",
            "schedule": float(settings.overage_event_retry_interval_seconds),
        },
        # Stored Stripe events whose processing task never ran are enqueued again.
        "sweep-stripe-events": {
            "task": "tasks.billing.sweep_events",
            "schedule": float(settings.inbox_sweep_interval_seconds),
        },
        # Rows past retention (USAGE_REPORT_RETENTION_DAYS, STRIPE_EVENT_RETENTION_DAYS) removed in
        # small batches, after the rollup and metering of the night (safe twice).
        "prune-retention": {
            "task": "tasks.maintenance.prune_retention",
            "schedule": crontab(minute=30, hour=2),
        },
        # Stripe events of the last days that the webhook never delivered are stored and handled.
        "reconcile-stripe-events": {
            "task": "tasks.billing.reconcile_events",
            "schedule": 900.0,
        },
        # Live Stripe subscriptions compared with local rows; drift repaired (hourly: it lists
        # every known customer's subscriptions).
        "reconcile-stripe-subscriptions": {
            "task": "tasks.billing.reconcile_subscriptions",
            "schedule": 3600.0,
        },
    }
