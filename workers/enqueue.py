"""Publishing tasks from the ingress without ever losing what was accepted."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

log = logging.getLogger(__name__)


def enqueue(task: Task, *args: Any, countdown: float | None = None, retries: int = 0) -> bool:
    """Publish a task once, without retrying against a dead broker.

    The caller has already stored the durable row; when the broker is down this returns False
    and the inbox sweeper on beat publishes the row's task again once the broker is back.
    """
    try:
        # ignore_result: the durable row is the outcome, nobody waits for a result. Without it a
        # Redis result backend subscribes to the task's result channel on every publish from a
        # non-worker process, and with Redis down that retries for ~20 s (celery.backends.redis
        # retry policy) before the request can be answered.
        # `countdown` and `retries`: a failed attempt handed on as a task's retry.
        task.apply_async(
            args=args, retry=False, ignore_result=True, countdown=countdown, retries=retries
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure means "try later"
        log.warning("enqueue of %s failed, left for the sweeper: %s", task.name, exc)
        return False
    return True
