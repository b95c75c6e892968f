"""Cluster-wide figures for /metrics: queue depth and task outcomes from the broker, inbox backlog
from the database. Lives in workers/ because it reads the queues workers/ defines; the API
registers it where it builds /metrics (core/ never imports workers/)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.metrics import register_once
from core.settings import Settings, get_settings
from workers.queues import ALL_QUEUES

log = logging.getLogger(__name__)

TASK_OUTCOMES_KEY = "metrics:task-outcomes"


@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _broker_redis(settings: Settings) -> redis.Redis | None:
    url = settings.resolved_broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    return _redis_client(url)


def record_task_outcome(task_name: str, outcome: str) -> None:
    """Count a task outcome in Redis so every worker process adds to one figure."""
    settings = get_settings()
    client = _broker_redis(settings)
    if client is None:
        return
    try:
        client.hincrby(settings.celery_key_prefix + TASK_OUTCOMES_KEY, f"{task_name}|{outcome}", 1)
    except redis.RedisError as exc:
        log.debug("task outcome not counted: %s", exc)


def queue_depths(settings: Settings | None = None) -> dict[str, int] | None:
    """Tasks waiting in each queue, for the console's overview; None when the broker is not
    Redis or does not answer (the page says so instead of failing)."""
    settings = settings or get_settings()
    client = _broker_redis(settings)
    if client is None:
        return None
    try:
        pipe = client.pipeline(transaction=False)
        for queue in ALL_QUEUES:
            pipe.llen(settings.celery_key_prefix + queue)
        return dict(zip(ALL_QUEUES, map(int, pipe.execute()), strict=True))
    except redis.RedisError as exc:
        log.warning("queue depths unavailable: %s", exc)
        return None


class ClusterCollector(Collector):
    """Queue depth, task outcomes and inbox backlog, read when Prometheus scrapes."""

    def describe(self) -> list:
        # Without this the registry would call collect() (database and Redis) on registration.
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        settings = get_settings()
        client = _broker_redis(settings)
        if client is not None:
            yield from self._from_redis(client, settings.celery_key_prefix)
        yield from self._inbox_backlog()

    def _from_redis(self, client: redis.Redis, prefix: str) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "billing_queue_depth", "Tasks waiting in each queue", labels=["queue"]
        )
        outcomes = CounterMetricFamily(
            "billing_tasks", "Tasks finished, by task name and outcome", labels=["task", "outcome"]
        )
        try:
            pipe = client.pipeline(transaction=False)
            for queue in ALL_QUEUES:
                pipe.llen(prefix + queue)
            pipe.hgetall(prefix + TASK_OUTCOMES_KEY)
            *lengths, counts = pipe.execute()
        except redis.RedisError as exc:
            log.warning("broker metrics unavailable: %s", exc)
            return
        for queue, length in zip(ALL_QUEUES, lengths, strict=True):
            depth.add_metric([queue], length)
        for field, value in counts.items():
            task, _, outcome = field.decode().rpartition("|")
            outcomes.add_metric([task, outcome], int(value))
        yield depth
        yield outcomes

    def _inbox_backlog(self) -> Iterator[GaugeMetricFamily]:
        from core.db import new_session
        from core.operations.overview import inbox_backlog

        backlog = GaugeMetricFamily(
            "billing_inbox_unprocessed",
            "Stored webhook events and usage reports not processed yet",
            labels=["inbox"],
        )
        try:
            with new_session() as session:
                waiting, failed, reports = inbox_backlog(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a down database
            log.warning("inbox metrics unavailable: %s", exc)
            return
        # Not processed yet, whether still waiting or failed for good (the console tells apart).
        backlog.add_metric(["stripe_events"], waiting + failed)
        backlog.add_metric(["usage_reports"], reports or 0)
        yield backlog


def register_cluster_collector(registry: CollectorRegistry) -> None:
    """Add the collector to `registry` once, however often the API app is built."""
    register_once(registry, ClusterCollector)
