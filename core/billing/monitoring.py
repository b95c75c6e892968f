"""What /metrics says about billing: open billing issues (conflicts, disputes), read from the
database when Prometheus scrapes. Reconciliation's repairs are counted by its task as task
outcomes (`billing_tasks{task="tasks.billing.reconcile_subscriptions",outcome="drift_repaired"}`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.billing import issues

log = logging.getLogger(__name__)


class BillingIssuesCollector(Collector):
    def describe(self) -> list:
        # Without this the registry would call collect() (the database) on registration.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from core.db import new_session

        gauge = GaugeMetricFamily(
            "billing_issues_open",
            "Billing issues an operator must sort out: second live subscriptions (conflict), "
            "disputed charges (dispute)",
            labels=["kind"],
        )
        try:
            with new_session() as session:
                counts = issues.open_issue_counts(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a down database
            log.warning("billing issue metrics unavailable: %s", exc)
            return
        for kind, count in counts.items():
            gauge.add_metric([kind], count)
        yield gauge


_registered: set[int] = set()


def register_billing_collector(registry: CollectorRegistry) -> None:
    """Add the collector to `registry` once, however often the API app is built."""
    if id(registry) not in _registered:
        registry.register(BillingIssuesCollector())
        _registered.add(id(registry))
