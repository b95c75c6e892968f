"""Redis stopped while usage reports and webhooks arrive: every 2xx is stored, and all of it is
processed after Redis returns, with no operator action (the inbox sweepers on beat)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.figures import record
from tests.faults.harness import RedisServer, service_env, services, wait_for_workers
from tests.faults.scenarios import (
    count_events,
    count_reports,
    current_license_token,
    deliver_webhook,
    send_report,
)
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import license_claims, new_customer, start_checkout, subscription_row

pytestmark = pytest.mark.faults

CUSTOMERS = 3
REPORTS_PER_CUSTOMER = 10
HANDLED = ("processed", "ignored")


def test_requests_during_a_redis_outage_are_stored_and_processed_after_it(
    stand_in: Any, tmp_path: Path
) -> None:
    figures = record("Redis stopped during traffic")
    customers = [new_customer(email=f"outage{n}@example.com") for n in range(CUSTOMERS)]
    tokens = {customer_id: current_license_token(customer_id) for customer_id in customers}
    events = [event for customer_id in customers for event in start_checkout(stand_in, customer_id)]
    event_ids = {event["id"] for event in events}
    report_ids: set[int] = set()
    latencies: list[float] = []
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    with RedisServer(tmp_path) as redis:
        env = service_env(
            redis.url, INBOX_SWEEP_AFTER_SECONDS="2", INBOX_SWEEP_INTERVAL_SECONDS="2"
        )
        with services(env, tmp_path) as running, httpx.Client(timeout=15) as http:
            api_url = running.api()
            running.worker()
            running.beat()
            wait_for_workers(running, ["worker"])

            redis.stop()
            figures.faults.append("redis-server stopped (its data lost: no persistence)")
            for n in range(REPORTS_PER_CUSTOMER):
                for customer_id in customers:
                    stamp = (base + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
                    status, body, seconds = send_report(
                        http, api_url, tokens[customer_id], customer_id, "edge-1", stamp, n + 1
                    )
                    figures.count(status)
                    latencies.append(seconds)
                    assert status == 202, body
                    report_ids.add(body["reportId"])
            for event in events:
                status, body, seconds = deliver_webhook(http, api_url, event)
                figures.count(status)
                latencies.append(seconds)
                assert status == 200, body
            # Everything answered 2xx is in PostgreSQL already, while Redis is still down.
            assert count_reports(report_ids) == len(report_ids)
            assert count_events(event_ids) == len(event_ids)
            assert count_reports(report_ids, processed=True) == 0
            assert count_events(event_ids, HANDLED) == 0

            redis.start()
            figures.faults.append("redis-server started again on the same port, empty")
            came_back = time.monotonic()
            # No operator action: the worker and beat reconnect, the sweepers find the rows.
            wait_until(
                lambda: (
                    count_reports(report_ids, processed=True) == len(report_ids)
                    and count_events(event_ids, HANDLED) == len(event_ids)
                ),
                timeout=120,
                interval=0.5,
            )
            recovered = time.monotonic() - came_back

    for customer_id in customers:
        row = subscription_row(customer_id)
        assert (row["plan"], row["status"]) == ("starter", "active")
        assert license_claims(customer_id)["plan"] == "starter"
    figures.stored = count_reports(report_ids) + count_events(event_ids)
    figures.processed = count_reports(report_ids, processed=True) + count_events(event_ids, HANDLED)
    figures.notes.update(
        {
            "usage reports / webhook deliveries": f"{len(report_ids)} / {len(events)}",
            "answer while Redis was down, median / slowest (s)": (
                f"{sorted(latencies)[len(latencies) // 2]:.3f} / {max(latencies):.2f}"
            ),
            "all processed after Redis returned (s)": round(recovered, 1),
        }
    )
