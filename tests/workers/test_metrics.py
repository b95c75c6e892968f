"""The cluster collector: what workers record in Redis is what /metrics reads."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest


def test_task_outcomes_recorded_by_workers_are_collected_once_per_registry() -> None:
    from workers.metrics import record_task_outcome, register_cluster_collector

    registry = CollectorRegistry()
    register_cluster_collector(registry)
    register_cluster_collector(registry)  # building the API twice must not double the figures
    record_task_outcome("tasks.example.job", "failure")
    record_task_outcome("tasks.example.job", "failure")

    text = generate_latest(registry).decode()
    assert 'billing_tasks_total{outcome="failure",task="tasks.example.job"} 2.0' in text
    assert text.count("# TYPE billing_queue_depth gauge") == 1
    assert 'billing_inbox_unprocessed{inbox="usage_reports"} 0.0' in text
