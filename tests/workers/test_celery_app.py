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
    assert router.route({}, "tasks.billing.process_event")["queue"].name == "webhooks"
    assert router.route({}, "tasks.licenses.reissue")["queue"].name == "licenses"
    assert router.route({}, "tasks.maintenance.ping")["queue"].name == "default"
    assert router.route({}, "tasks.billing.expire_trials")["queue"].name == "licenses"
    assert router.route({}, "tasks.usage.rollup_usage_day")["queue"].name == "default"
    assert router.route({}, "tasks.customers.create_customer")["queue"].name == "licenses"


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
