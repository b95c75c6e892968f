"""PostgreSQL gone while traffic arrives: the ingress answers 503 (never 500, never a hang), and
nothing it answered 2xx for is missing or left unprocessed afterwards."""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.faults.figures import record
from tests.faults.harness import RedisServer, service_env, services, wait_for_workers
from tests.faults.scenarios import (
    count_events,
    count_reports,
    current_license_token,
    deliver_webhook,
    send_report,
)
from tests.helpers.tcp_proxy import TcpProxy
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import new_customer, start_checkout, subscription_row

pytestmark = pytest.mark.faults

REPORTS = 80
MAX_SENDS = 1000
CUT_AFTER_ANSWERS = 30
RESTORE_AFTER_503 = 25
HANDLED = ("processed", "ignored")


def through(proxy: TcpProxy) -> str:
    """The per-run test database's URL, reached through the proxy."""
    parts = urlsplit(TEST_DATABASE_URL)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


class Traffic:
    """An instance and Stripe, each sending until answered 2xx (as both retry a 503)."""

    def __init__(self, api_url: str, jobs: list[tuple[str, Any]], figures: Any) -> None:
        self.api_url = api_url
        self.pending = deque(jobs)
        self.figures = figures
        self.report_ids: set[int] = set()
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=20) as http:
            while self.pending and len(self.statuses) < MAX_SENDS:
                kind, job = self.pending.popleft()
                if kind == "report":
                    status, body, _ = send_report(http, self.api_url, *job)
                else:
                    status, body, _ = deliver_webhook(http, self.api_url, job)
                with self.lock:
                    self.statuses.append(status)
                    self.figures.count(status)
                    if kind == "report" and status == 202:
                        self.report_ids.add(body["reportId"])
                if not 200 <= status < 300:
                    self.pending.append((kind, job))  # retried later, as the sender would

    def count(self, predicate: Any) -> int:
        with self.lock:
            return sum(1 for status in self.statuses if predicate(status))


def ingress_routes(customer_id: str, token: str, admin_key: str, event: Any) -> list[Any]:
    from tests.stripe_fixtures import webhook_secret
    from tests.stripe_stand_in import signed_webhook

    payload, signed = signed_webhook(event, webhook_secret())
    instance = {"Authorization": f"Bearer {token}"}
    admin = {"Authorization": f"Bearer {admin_key}"}
    report = {
        "customer_id": customer_id,
        "instance_id": "cut-1",
        "active_devices": 1,
        "total_devices": 2,
    }
    return [
        ("POST", "/webhooks/stripe", {"content": payload, "headers": signed}),
        ("POST", "/api/usage/report", {"json": report, "headers": instance}),
        ("GET", "/api/licenses/current", {"headers": instance}),
        ("GET", f"/api/usage/{customer_id}", {"headers": instance}),
        ("GET", f"/api/licenses/{customer_id}", {"headers": admin}),
        ("GET", "/api/customers", {"headers": admin}),
        ("POST", "/api/customers", {"json": {"email": "new@example.com"}, "headers": admin}),
        ("GET", f"/api/customers/{customer_id}", {"headers": admin}),
    ]


def test_database_outage_answers_503_and_loses_nothing_answered_2xx(
    stand_in: Any, admin_key: str, tmp_path: Path
) -> None:
    figures = record("PostgreSQL cut during traffic")
    customers = [new_customer(email=f"pg{n}@example.com") for n in range(2)]
    tokens = {customer_id: current_license_token(customer_id) for customer_id in customers}
    events = [event for customer_id in customers for event in start_checkout(stand_in, customer_id)]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    jobs: list[tuple[str, Any]] = []
    for n in range(REPORTS):
        customer_id = customers[n % 2]
        stamp = (base + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
        jobs.append(("report", (tokens[customer_id], customer_id, "edge-1", stamp, n % 7 + 1)))
        if n % 8 == 0 and n // 8 < len(events):
            jobs.append(("event", events[n // 8]))
    jobs += [("event", event) for event in events[REPORTS // 8 + 1 :]]
    event_ids = {event["id"] for event in events}

    with RedisServer(tmp_path) as redis, TcpProxy("127.0.0.1", 5432) as proxy:
        env = service_env(
            redis.url, INBOX_SWEEP_AFTER_SECONDS="2", INBOX_SWEEP_INTERVAL_SECONDS="2"
        )
        with services(env, tmp_path) as running, httpx.Client(timeout=20) as http:
            # Only the ingress goes through the proxy; the worker and beat reach PostgreSQL.
            api_url = running.api(DATABASE_URL=through(proxy))
            running.worker()
            running.beat()
            wait_for_workers(running, ["worker"])

            traffic = Traffic(api_url, jobs, figures)
            traffic.thread.start()
            wait_until(lambda: traffic.count(lambda s: s != 0) >= CUT_AFTER_ANSWERS, timeout=60)
            proxy.cut()
            figures.faults.append("PostgreSQL cut (every connection closed, new ones refused)")
            route_statuses = {}
            for method, path, kwargs in ingress_routes(
                customers[0], tokens[customers[0]], admin_key, events[0]
            ):
                # A license check-in may still be answered from the process's cache for its
                # trust window (0.7 s after the last good poll of the change counter).
                deadline = time.monotonic() + 3
                response = http.request(method, api_url + path, **kwargs)
                while response.status_code != 503 and time.monotonic() < deadline:
                    time.sleep(0.2)
                    response = http.request(method, api_url + path, **kwargs)
                route_statuses[f"{method} {path}"] = response.status_code
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"]["code"] == "unavailable"
            wait_until(lambda: traffic.count(lambda s: s == 503) >= RESTORE_AFTER_503, timeout=60)
            proxy.restore()
            figures.faults.append("PostgreSQL restored behind the same address")
            traffic.thread.join(timeout=120)
            assert not traffic.thread.is_alive()
            assert not traffic.pending, "some requests were never accepted"

            # Every request answered 2xx is stored, and the worker processed each of them.
            assert count_reports(traffic.report_ids) == len(traffic.report_ids) == REPORTS
            assert count_events(event_ids) == len(event_ids)
            wait_until(
                lambda: (
                    count_reports(traffic.report_ids, processed=True) == REPORTS
                    and count_events(event_ids, HANDLED) == len(event_ids)
                ),
                timeout=90,
                interval=0.5,
            )

    assert traffic.count(lambda s: s not in (200, 202, 503)) == 0, traffic.statuses
    for customer_id in customers:
        assert subscription_row(customer_id)["plan"] == "starter"
    figures.stored = count_reports(traffic.report_ids) + count_events(event_ids)
    figures.processed = count_reports(traffic.report_ids, processed=True) + count_events(
        event_ids, HANDLED
    )
    figures.notes.update(
        {
            "distinct reports / webhook events": f"{REPORTS} / {len(event_ids)}",
            "routes answering 503 while cut": len(route_statuses),
            "resent after a 503 and then accepted": figures.answered_503,
        }
    )
