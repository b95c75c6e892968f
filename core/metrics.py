"""Prometheus metrics of this process: HTTP traffic. The cluster-wide figures (queues, task
outcomes, inbox backlog) are collected by workers/metrics.py, registered by the API."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "billing_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "billing_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)

_registered: set[tuple[int, str]] = set()


def register_once(registry: CollectorRegistry, make_collector: Callable[[], Collector]) -> None:
    """Add `make_collector()` to `registry` once, however often the API app is built."""
    key = (id(registry), make_collector.__qualname__)
    if key not in _registered:
        registry.register(make_collector())
        _registered.add(key)
