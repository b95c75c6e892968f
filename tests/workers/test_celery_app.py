"""Tasks go through the real Redis broker and run on a real worker."""

from __future__ import annotations

import socket

from celery import Task

from workers.celery_app import celery_app
from workers.queues import ALL_QUEUES


def test_a_task_enqueued_through_redis_runs_on_a_real_worker(celery_worker) -> None:
    from tasks.maintenance import ping

    assert celery_app.conf.broker_url.startswith("redis://")
    result = ping.apply_async()
    assert result.get(timeout=20) == {"pong": "ok", "host": socket.gethostname()}
    assert result.state == "SUCCESS"


def test_a_task_sent_by_its_name_runs_on_a_real_worker(celery_worker) -> None:
    """The API and the CLI send tasks by name (they never import tasks/): the name reaches the
    task, and its result is the task's."""
    from workers import task_names

    result = celery_app.send_task(task_names.PING)
    assert result.get(timeout=20) == {"pong": "ok", "host": socket.gethostname()}


def test_enqueue_refuses_a_task_object_rather_than_dropping_it() -> None:
    """A task object, not its name, would fail inside the publish like a dead broker does and
    be dropped without a word."""
    import pytest

    from tasks.maintenance import ping
    from workers.enqueue import enqueue

    with pytest.raises(TypeError, match="task_names"):
        enqueue(ping)  # type: ignore[arg-type]


def test_every_task_has_its_one_name_and_every_name_a_task() -> None:
    import tasks.billing
    import tasks.licenses
    import tasks.maintenance
    import tasks.usage
    from workers import task_names

    modules = (tasks.billing, tasks.licenses, tasks.maintenance, tasks.usage)
    registered = {
        task.name for module in modules for task in vars(module).values() if isinstance(task, Task)
    }
    named = {value for name, value in vars(task_names).items() if name.isupper()}
    assert named == registered


def test_crash_safety_and_serialisation_settings() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert {queue.name for queue in conf.task_queues} == set(ALL_QUEUES)


def test_tasks_are_routed_to_their_domain_queue() -> None:
    router = celery_app.amqp.router
    assert router.route({}, "tasks.usage.process_report_batch")["queue"].name == "usage"
    assert router.route({}, "tasks.billing.process_event")["queue"].name == "webhooks"
    assert router.route({}, "tasks.licenses.reissue_license")["queue"].name == "licenses"
    assert router.route({}, "tasks.maintenance.ping")["queue"].name == "default"
    assert router.route({}, "tasks.billing.expire_trials")["queue"].name == "licenses"
    assert router.route({}, "tasks.usage.rollup_usage_day")["queue"].name == "default"
    assert router.route({}, "tasks.billing.process_events")["queue"].name == "webhooks"


def test_a_published_task_lands_in_its_own_queue_only() -> None:
    import uuid

    import redis

    from core.settings import get_settings
    from workers.celery_app import create_celery_app

    # An app of its own key prefix, so the session's worker does not take the messages.
    prefix = f"routing-{uuid.uuid4().hex[:8]}:"
    settings = get_settings().model_copy(update={"celery_key_prefix": prefix})
    app = create_celery_app(settings)
    client = redis.Redis.from_url(settings.resolved_broker_url)
    try:
        app.send_task("tasks.usage.process_report_batch", args=[[1]], ignore_result=True)
        app.send_task("tasks.billing.process_event", args=["evt_1"], ignore_result=True)
        depth = {queue: client.llen(prefix + queue) for queue in ALL_QUEUES}
        assert depth == {"webhooks": 1, "usage": 1, "licenses": 0, "default": 0}
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


IMPORT_PROBE = """
import core.settings

reads = []
original = core.settings.Settings.__init__


def counting_init(self, *args, **kwargs):
    reads.append(1)
    original(self, *args, **kwargs)


core.settings.Settings.__init__ = counting_init
import tasks.billing, tasks.licenses, tasks.maintenance, tasks.usage
from workers.celery_app import celery_app

print("reads", len(reads), "configured", celery_app.configured)
# The decorated tasks work: using one reads the configuration, from the settings of that moment.
assert tasks.maintenance.ping.name == "tasks.maintenance.ping"
print("broker", celery_app.conf.broker_url)
"""


def test_importing_the_task_modules_reads_no_settings_and_configures_nothing() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CELERY_BROKER_URL": "redis://127.0.0.1:6399/7"}
    probe = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert "reads 0 configured False" in probe.stdout
    assert "broker redis://127.0.0.1:6399/7" in probe.stdout


def test_task_results_do_not_keep_the_task_arguments(celery_worker) -> None:
    """A task's args (customer ids, tokens) must not be copied into the result backend."""
    import redis

    from core.settings import get_settings
    from tasks.maintenance import ping

    assert celery_app.conf.result_extended is False
    result = ping.apply_async()
    result.get(timeout=20)
    settings = get_settings()
    client = redis.Redis.from_url(settings.resolved_result_backend)
    stored = client.get(f"{settings.celery_key_prefix}celery-task-meta-{result.id}")
    assert stored is not None
    assert b'"args"' not in stored and b'"kwargs"' not in stored


def test_no_task_takes_a_secret_as_an_argument() -> None:
    """Task args travel through Redis and show in Flower: ids only, never tokens or keys."""
    import inspect
    import re

    import tasks.billing  # noqa: F401 - registers the tasks
    import tasks.licenses  # noqa: F401
    import tasks.maintenance  # noqa: F401
    import tasks.usage  # noqa: F401

    secret_like = re.compile(r"token|jwt|secret|password|private|api_?key|license$", re.IGNORECASE)
    ours = {name: task for name, task in celery_app.tasks.items() if name.startswith("tasks.")}
    assert len(ours) >= 10
    offending = [
        f"{name}({parameter})"
        for name, task in ours.items()
        for parameter in inspect.signature(task.run).parameters
        if secret_like.search(parameter)
    ]
    assert not offending
