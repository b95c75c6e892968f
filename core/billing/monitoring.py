"""What /metrics says about billing: open billing issues (conflicts, disputes), meter events
Stripe refused for good and those set aside as unconfirmed, read from the database when
Prometheus scrapes. Reconciliation's repairs are counted by its task as task outcomes
(`billing_tasks{task="tasks.billing.reconcile_subscriptions",outcome="drift_repaired"}`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.billing import issues
from core.billing.metering import events
from core.metrics import register_once

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
        failed_events = GaugeMetricFamily(
            "overage_meter_events_failed",
            "Device overage meter events Stripe refused for good, no longer sent: an operator "
            "fixes the cause and runs `billing stripe meter-retry`",
        )
        unconfirmed_events = GaugeMetricFamily(
            "overage_meter_events_unconfirmed",
            "Device overage meter events whose outcome was unknown for longer than Stripe "
            "refuses a resent identifier, not resent so as never to bill twice: an operator "
            "looks in Stripe and runs `billing stripe meter-settle`",
        )
        try:
            with new_session() as session:
                counts = issues.open_issue_counts(session)
                failed = events.failed_count(session)
                unconfirmed = events.count_in_state(session, events.UNCONFIRMED)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a down database
            log.warning("billing issue metrics unavailable: %s", exc)
            return
        for kind, count in counts.items():
            gauge.add_metric([kind], count)
        yield gauge
        failed_events.add_metric([], failed)
        yield failed_events
        unconfirmed_events.add_metric([], unconfirmed)
        yield unconfirmed_events


def register_billing_collector(registry: CollectorRegistry) -> None:
    """Add the collector to `registry` once, however often the API app is built."""
    register_once(registry, BillingIssuesCollector)
