"""Worker signals: JSON logging in every worker process, and task outcomes for /metrics."""

from __future__ import annotations

from typing import Any

from celery import signals

from core.logging import configure_logging
from core.settings import get_settings
from workers.metrics import record_task_outcome


@signals.setup_logging.connect
def _configure_worker_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@signals.task_success.connect
def _count_success(sender: Any = None, **_: Any) -> None:
    record_task_outcome(sender.name, "success")


@signals.task_failure.connect
def _count_failure(sender: Any = None, **_: Any) -> None:
    record_task_outcome(sender.name, "failure")


@signals.task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    record_task_outcome(sender.name, "retry")


# Each beat job's runs, recorded by beat and the workers (core.operations.jobs).
import workers.job_runs  # noqa: E402, F401
