"""What is kept, and from when: the retention cutoffs every reader and the pruner share.

Raw usage reports are kept for the last USAGE_REPORT_RETENTION_DAYS finished UTC days (and
today); a day older than that is pruned once its rollup has finished, and from then on the day
is read from usage_daily only. Stripe events keep their payload STRIPE_EVENT_RETENTION_DAYS
after they were processed. Everything else of the billing and security record (usage_daily,
meter events, licenses, the audit log) is kept for good.

A module below the pruning (core/retention/), which reads every room, so that readers of the
cutoffs (the usage viewer) never import the pruner.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from core.settings import get_settings
from core.usage.days import utc_day_start


def first_kept_report_day(now: datetime) -> date:
    """The oldest UTC day whose raw usage reports are kept; days before it are pruned."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=get_settings().usage_report_retention_days)


def reports_kept_since(now: datetime) -> datetime:
    """The first instant whose raw usage reports are still kept (a UTC midnight)."""
    return utc_day_start(first_kept_report_day(now))


def event_payloads_kept_since(now: datetime) -> datetime:
    """Processed Stripe events before this lose their payload."""
    return now - timedelta(days=get_settings().stripe_event_retention_days)
