"""Set-based bulk loading for the benchmarks: customers, subscriptions and usage reports.

Plain INSERT ... SELECT generate_series, so a million rows load in seconds. Customers are on
plans with real device limits so usage processing does its full work (threshold checks, alerts).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from core.db import session_scope

PLANS = ("trial", "starter", "professional", "enterprise")


def load_customers(count: int) -> None:
    """`count` customers cust_bench_000001... with a subscription each (plans in rotation)."""
    with session_scope() as session:
        session.execute(
            text(
                """
                INSERT INTO customers (customer_id, email, name, company_name,
                                       usage_threshold_percent, created_at, updated_at)
                SELECT format('cust_bench_%s', lpad(n::text, 6, '0')),
                       format('bench%s@example.com', n), format('Bench Person %s', n),
                       format('Bench Company %s', n), 0, now(), now()
                FROM generate_series(1, :count) AS n
                """
            ),
            {"count": count},
        )
        session.execute(
            text(
                """
                INSERT INTO subscriptions (customer_id, plan, status, trial_ends_at,
                                           current_period_ends_at, cancel_at_period_end,
                                           created_at, updated_at)
                SELECT format('cust_bench_%s', lpad(n::text, 6, '0')),
                       (ARRAY['trial', 'starter', 'professional', 'enterprise'])[1 + n % 4],
                       CASE WHEN n % 4 = 0 THEN 'trialing' ELSE 'active' END,
                       now() + interval '14 days', now() + interval '30 days', false, now(), now()
                FROM generate_series(1, :count) AS n
                """
            ),
            {"count": count},
        )


def load_reports(
    count: int,
    *,
    customers: int,
    instances: int,
    start: datetime,
    seconds: int,
    processed: bool,
) -> None:
    """`count` reports spread over customers x instances and `seconds` from `start`.

    Report n goes to customer n % customers and instance (n / customers) % instances, at a time
    unique per (customer, instance), as real instances report. `processed=False` leaves them
    pending, as the ingress stores them.
    """
    with session_scope() as session:
        session.execute(
            text(
                """
                INSERT INTO usage_reports (customer_id, instance_id, active_devices, total_devices,
                                           reported_at, attempts, created_at, processed_at)
                SELECT format('cust_bench_%s', lpad((1 + n % :customers)::text, 6, '0')),
                       format('instance-%s', (n / :customers) % :instances),
                       (n * 7) % 45, 45,
                       :start + make_interval(secs => (n::double precision * :seconds) / :count),
                       0, now() - interval '10 minutes',
                       CASE WHEN :processed THEN now() ELSE NULL END
                FROM generate_series(0, :count - 1) AS n
                """
            ),
            {
                "count": count,
                "customers": customers,
                "instances": instances,
                "start": start,
                "seconds": seconds,
                "processed": processed,
            },
        )
        session.execute(text("ANALYZE usage_reports"))
