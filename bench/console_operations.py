"""Operations pages benchmark: the overview, money at risk, Stripe events (list, filtered, one
event), meter events and billing issues on a big database.

`python -m bench.console_operations` (until `./scripts/bench console` takes these pages too).
Loads, straight into PostgreSQL with set-based SQL: 10,000 customers (subscriptions of every
plan and status, 2 % past_due), 1,000,000 usage reports, 100,000 Stripe events (payment failures
of the past_due customers among them, with attempts), 10,000 instances, 30 days of meter events
for 500 customers, 200 billing issues. A signed-in operator then asks each page
BENCH_CONSOLE_REQUESTS (200) times through the app in-process (ASGI: server time, no network).
Prints p50/p95 per page. Target: p95 under 100 ms for every page.
"""

from __future__ import annotations

import os
import time

from bench.common import bench_environment, print_table, print_verdict

REQUESTS = int(os.environ.get("BENCH_CONSOLE_REQUESTS", "200"))
TARGET_MS = 100.0
ORIGIN = "http://testserver"

LOAD = [
    # 10,000 customers and their subscriptions: plans and statuses spread as in production.
    """INSERT INTO customers (customer_id, email, company_name, usage_threshold_percent,
                              created_at, updated_at)
       SELECT 'cust_b' || n, 'ops' || n || '@example' || n || '.com', 'Company ' || n,
              CASE WHEN n % 50 = 0 THEN 100 ELSE 0 END, now(), now()
       FROM generate_series(1, 10000) n""",
    """INSERT INTO subscriptions (customer_id, stripe_subscription_id, plan, status,
                                  trial_ends_at, current_period_ends_at, paid_through_at,
                                  cancel_at_period_end, collection_paused, created_at, updated_at)
       SELECT 'cust_b' || n,
              CASE WHEN n % 10 < 8 THEN 'sub_b' || n END,
              (ARRAY['trial', 'starter', 'professional', 'enterprise'])[1 + n % 4],
              CASE WHEN n % 50 = 1 THEN 'past_due' WHEN n % 100 = 2 THEN 'unpaid'
                   WHEN n % 10 = 8 THEN 'trialing' WHEN n % 10 = 9 THEN 'canceled'
                   ELSE 'active' END,
              now() + (n % 14) * interval '1 day',
              now() + (n % 30) * interval '1 day',
              now() - (n % 5) * interval '1 day',
              n % 40 = 3, false, now(), now()
       FROM generate_series(1, 10000) n""",
    """INSERT INTO instance_usage (customer_id, instance_id, active_devices, total_devices,
                                   reported_at, report_id, updated_at, first_seen_at)
       SELECT 'cust_b' || n, 'edge-1', 5 + n % 60, 5 + n % 60, now(), n, now(), now()
       FROM generate_series(1, 10000) n""",
    """INSERT INTO usage_reports (customer_id, instance_id, active_devices, total_devices,
                                  reported_at, processed_at, attempts, created_at)
       SELECT 'cust_b' || (1 + n % 10000), 'edge-1', n % 60, n % 60,
              now() - n * interval '2 seconds', now(), 1, now()
       FROM generate_series(1, 1000000) n""",
    """INSERT INTO stripe_events (event_id, type, payload, stripe_created, source, status,
                                  received_at, processed_at, attempts, customer_id)
       SELECT 'evt_b' || n,
              CASE WHEN n % 1000 < 200 THEN 'invoice.payment_failed'
                   ELSE (ARRAY['invoice.paid', 'customer.subscription.updated',
                               'checkout.session.completed'])[1 + n % 3] END,
              json_build_object('id', 'evt_b' || n, 'object', 'event',
                                'data', json_build_object('object', json_build_object(
                                    'id', 'in_b' || (n % 5000), 'amount_due', 2900))),
              extract(epoch from now())::bigint - n * 30, 'webhook',
              CASE WHEN n % 500 = 0 THEN 'failed' ELSE 'processed' END,
              now(), now(), 1,
              'cust_b' || CASE WHEN n % 1000 < 200 THEN 1 + 50 * (n % 200) ELSE 1 + n % 10000 END
       FROM generate_series(1, 100000) n""",
    """INSERT INTO stripe_event_attempts (event_id, attempted_at, outcome, trigger, customer_id)
       SELECT event_id, now(), status, 'worker', customer_id FROM stripe_events""",
    """INSERT INTO overage_meter_events (customer_id, day, sequence, value, plan,
                                         stripe_customer_id, event_name, identifier, created_at,
                                         sent_at, attempts, refusals)
       SELECT 'cust_b' || c, current_date - d, 0, 1 + c % 7, 'starter', 'cus_b' || c,
              'zemfyre_device_overage', 'cust_b' || c || '-' || d, now(),
              CASE WHEN (c + d) % 97 = 0 THEN NULL ELSE now() END, 1, 0
       FROM generate_series(1, 500) c, generate_series(1, 30) d""",
    """INSERT INTO billing_issues (kind, customer_id, stripe_object_id, stripe_status,
                                   amount_cents, detail, created_at, updated_at)
       SELECT CASE WHEN n % 2 = 0 THEN 'dispute' ELSE 'conflict' END, 'cust_b' || (n * 37),
              'obj_b' || n, 'needs_response', 2900, 'bench issue', now(), now()
       FROM generate_series(1, 200) n""",
    "ANALYZE",
]

PAGES = [
    ("overview", "/console/"),
    ("money at risk", "/console/at-risk"),
    ("events", "/console/events"),
    ("events: failed", "/console/events?state=failed"),
    ("events: a customer", "/console/events?customer=cust_b51"),
    ("event page", "/console/events/evt_b500"),
    ("meter events", "/console/meter-events"),
    ("billing issues", "/console/billing-issues"),
]


def _load() -> None:
    from sqlalchemy import text

    from core.db import get_engine

    with get_engine().begin() as connection:
        for statement in LOAD[:-1]:
            connection.execute(text(statement))
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(LOAD[-1]))


def _signed_in_client():  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.api_keys import create_api_key
    from core.db import session_scope

    with session_scope() as session:
        key = create_api_key(session, "bench@ops").key
    client = TestClient(create_app())
    client.__enter__()
    answer = client.post(
        "/console/login", data={"api_key": key}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    # Loading a million rows takes longer than one statement may by default.
    with bench_environment(
        "console_operations", LOG_LEVEL="WARNING", DATABASE_STATEMENT_TIMEOUT_MS="0"
    ):
        started = time.perf_counter()
        _load()
        print(f"loaded in {time.perf_counter() - started:.0f} s")
        client = _signed_in_client()
        rows, worst = [], 0.0
        for name, path in PAGES:
            assert client.get(path).status_code == 200, path  # warm: templates, caches
            times = []
            for _ in range(REQUESTS):
                begun = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - begun) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            p50, p95 = _percentile(times, 0.5), _percentile(times, 0.95)
            worst = max(worst, p95)
            rows.append((name, path, f"{p50:.1f}", f"{p95:.1f}"))
        print_table(
            f"Operations pages, {REQUESTS} requests each (ms, server time in-process)",
            rows,
            ("page", "path", "p50", "p95"),
        )
        print_verdict("worst p95", f"{worst:.1f} ms", f"< {TARGET_MS:.0f} ms", worst < TARGET_MS)


if __name__ == "__main__":
    main()
