"""The Celery app every worker, beat, the API and the CLI share.

Importing this module (and so any task module) reads no settings and opens no connection: the
configuration is a promise Celery evaluates the first time something reads `celery_app.conf`
(publishing a task, starting a worker), so `@celery_app.task` works at import time in any process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.settings import Settings, get_settings
from workers.beat import beat_schedule
from workers.queues import ALL_QUEUES, DEFAULT, TASK_ROUTES

TASK_MODULES = [
    "tasks.maintenance",
    "tasks.licenses",
    "tasks.billing",
    "tasks.usage",
]


def _redis_transport_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "visibility_timeout": settings.celery_visibility_timeout_seconds,
        # A SIGKILLed worker's unacknowledged task is given back by another worker's periodic
        # scan; kombu 5.7 scans only every `throttle`-th tick, so make the interval the one knob.
        "unacked_restore_interval": settings.celery_unacked_restore_interval_seconds,
        "unacked_restore_throttle": 1,
        # A publish must fail fast when Redis is down: the ingress has already stored the row
        # and the sweeper enqueues it again later.
        "socket_connect_timeout": settings.enqueue_timeout_seconds,
        "socket_timeout": max(5.0, settings.enqueue_timeout_seconds),
        "max_retries": 1,
        # ...and that one retry comes at once: kombu otherwise sleeps interval_start (2 s)
        # first, which every request published while Redis is down would wait.
        "interval_start": 0,
    }
    if settings.celery_key_prefix:
        options["global_keyprefix"] = settings.celery_key_prefix
    return options


def celery_config(settings: Settings) -> dict[str, Any]:
    broker_url = settings.resolved_broker_url
    result_backend = settings.resolved_result_backend
    transport_options = _redis_transport_options(settings) if broker_url.startswith("redis") else {}
    result_options = (
        {"global_keyprefix": settings.celery_key_prefix}
        if settings.celery_key_prefix and result_backend.startswith("redis")
        else {}
    )
    return dict(
        broker_url=broker_url,
        result_backend=result_backend,
        broker_transport_options=transport_options,
        result_backend_transport_options=result_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only after it ran, and a worker that dies mid-task gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Each queue has its own direct exchange and routing key, so a task routed to a queue is
        # published to that queue alone (and the worker banner shows the real bindings).
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ALL_QUEUES
        ],
        task_default_queue=DEFAULT,
        task_routes=TASK_ROUTES,
        task_track_started=True,
        worker_send_task_events=True,
        result_expires=86400,
        # Results keep only the task's return value (a small summary, never a secret): extended
        # results would copy every task's args into Redis, where Flower and anyone reading the
        # result backend would see them.
        result_extended=False,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )


def create_celery_app(settings: Settings | None = None) -> Celery:
    """An app whose configuration is read from `settings` (default: the process's settings)
    only when it is first needed."""
    app = Celery("zemfyre_billing", include=TASK_MODULES)
    # A callable given to add_defaults is a promise: Celery calls it when the configuration is
    # first read, never at import.
    app.add_defaults(lambda: celery_config(settings or get_settings()))
    return app


celery_app = create_celery_app()

# Signal handlers (logging, task metrics) must be connected in every process that runs tasks.
import workers.signals  # noqa: E402, F401
