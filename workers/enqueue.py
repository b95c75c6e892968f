"""Publishing tasks from the ingress without ever losing what was accepted."""

from __future__ import annotations

import logging
from typing import Any

from workers.celery_app import celery_app

log = logging.getLogger(__name__)


def enqueue(task_name: str, *args: Any, countdown: float | None = None, retries: int = 0) -> bool:
    """Publish a task once, by its name (workers/task_names.py), without retrying against a
    dead broker. By name, so a door that is not a task (the API, the CLI) never imports tasks/.

    The caller has already stored the durable row; when the broker is down this returns False
    and the inbox sweeper on beat publishes the row's task again once the broker is back.
    """
    if not isinstance(task_name, str):
        # A task object would fail inside the publish and pass for a dead broker: never sent.
        raise TypeError(f"enqueue takes a task's name (workers/task_names.py), not {task_name!r}")
    try:
        # ignore_result: the durable row is the outcome, nobody waits for a result. Without it a
        # Redis result backend subscribes to the task's result channel on every publish from a
        # non-worker process, and with Redis down that retries for ~20 s (celery.backends.redis
        # retry policy) before the request can be answered.
        # `countdown` and `retries`: a failed attempt handed on as a task's retry.
        celery_app.send_task(
            task_name,
            args=args,
            retry=False,
            ignore_result=True,
            countdown=countdown,
            retries=retries,
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure means "try later"
        log.warning("enqueue of %s failed, left for the sweeper: %s", task_name, exc)
        return False
    return True
