"""Named queues, so operators can scale and watch each kind of work on its own in Flower."""

from __future__ import annotations

WEBHOOKS = "webhooks"
USAGE = "usage"
LICENSES = "licenses"
DEFAULT = "default"

ALL_QUEUES = (WEBHOOKS, USAGE, LICENSES, DEFAULT)

# Task modules and the queue their tasks run on.
TASK_ROUTES = {
    "tasks.stripe_events.*": {"queue": WEBHOOKS},
    "tasks.stripe_sync.*": {"queue": WEBHOOKS},
    "tasks.usage.*": {"queue": USAGE},
    "tasks.licenses.*": {"queue": LICENSES},
    "tasks.trials.*": {"queue": LICENSES},
    "tasks.rollups.*": {"queue": DEFAULT},
    "tasks.maintenance.*": {"queue": DEFAULT},
}
