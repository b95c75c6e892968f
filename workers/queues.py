"""Named queues, so operators can scale and watch each kind of work on its own in Flower."""

from __future__ import annotations

WEBHOOKS = "webhooks"
USAGE = "usage"
LICENSES = "licenses"
DEFAULT = "default"

ALL_QUEUES = (WEBHOOKS, USAGE, LICENSES, DEFAULT)

# Task modules (and single tasks) and the queue they run on.
TASK_ROUTES = {
    # Exact names first: celery's router takes the first pattern that matches.
    "tasks.billing.expire_trials": {"queue": LICENSES},
    "tasks.usage.rollup_usage_day": {"queue": DEFAULT},
    "tasks.billing.meter_usage": {"queue": DEFAULT},
    "tasks.billing.send_meter_events": {"queue": DEFAULT},
    "tasks.billing.*": {"queue": WEBHOOKS},
    "tasks.usage.*": {"queue": USAGE},
    "tasks.licenses.*": {"queue": LICENSES},
    "tasks.maintenance.*": {"queue": DEFAULT},
}
