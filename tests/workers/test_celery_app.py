"""Tasks go through the real Redis broker and run on a real worker."""

from __future__ import annotations

import socket

from workers.celery_app import celery_app
from workers.queues import ALL_QUEUES


def test_a_task_enqueued_through_redis_runs_on_a_real_worker(celery_worker) -> None:
    from tasks.maintenance import ping

    assert celery_app.conf.broker_url.startswith("redis://")
    result = ping.apply_async()
    assert result.get(timeout=20) == {"pong": "ok", "host": socket.gethostname()}
    assert result.state == "SUCCESS"


def test_crash_safety_and_serialisation_settings() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert {queue.name for queue in conf.task_queues} == set(ALL_QUEUES)


def test_tasks_are_routed_to_their_domain_queue() -> None:
    router = celery_app.amqp.router
    assert router.route({}, "tasks.usage.process_report")["queue"].name == "usage"
    assert router.route({}, "tasks.stripe_events.process_event")["queue"].name == "webhooks"
    assert router.route({}, "tasks.licenses.reissue")["queue"].name == "licenses"
    assert router.route({}, "tasks.maintenance.ping")["queue"].name == "default"
