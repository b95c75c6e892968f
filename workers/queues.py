"""Named queues, so operators can scale and watch each kind of work on its own in Flower."""

from __future__ import annotations

from workers import task_names

WEBHOOKS = "webhooks"
USAGE = "usage"
LICENSES = "licenses"
DEFAULT = "default"

ALL_QUEUES = (WEBHOOKS, USAGE, LICENSES, DEFAULT)

# Task modules (and single tasks) and the queue they run on.
TASK_ROUTES = {
    # Exact names first: celery's router takes the first pattern that matches.
    task_names.EXPIRE_TRIALS: {"queue": LICENSES},
    task_names.ROLLUP_USAGE_DAY: {"queue": DEFAULT},
    task_names.METER_USAGE: {"queue": DEFAULT},
    task_names.SEND_METER_EVENTS: {"queue": DEFAULT},
    "tasks.billing.*": {"queue": WEBHOOKS},
    "tasks.usage.*": {"queue": USAGE},
    "tasks.licenses.*": {"queue": LICENSES},
    "tasks.maintenance.*": {"queue": DEFAULT},
}
