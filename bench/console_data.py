"""The console benchmark's database: 10,000 customers, 1,000,000 usage reports over 30 days (rolled
up as beat would have), 100,000 Stripe events, licenses, meter events and an audit log, generated
set-based straight into PostgreSQL. One customer (FULL_TIMELINE_CUSTOMER) has a full timeline:
more of every kind than the page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from core.db import session_scope

CUSTOMERS = 10_000
REPORTS = 1_000_000
STRIPE_EVENTS = 100_000
AUDIT_ENTRIES = 100_000
INSTANCES = 3
DAYS = 30
FULL_TIMELINE_CUSTOMER = "cust_bench_000001"

_LICENSES = """
INSERT INTO licenses (jti, customer_id, plan, kid, claims, token, fingerprint, issued_at,
                      expires_at, superseded_at)
SELECT format('jti-%s-%s', c, k), format('cust_bench_%s', lpad(c::text, 6, '0')),
       (ARRAY['trial', 'starter', 'professional', 'enterprise'])[1 + (c + k) % 4], 'bench-kid',
       '{}'::json, 'token', 'fp', now() - make_interval(days => 30 - k),
       now() + make_interval(days => k),
       CASE WHEN k < :per_customer THEN now() - make_interval(days => 29 - k) END
FROM generate_series(1, :customers) AS c, generate_series(1, :per_customer) AS k
WHERE c = 1 OR k > :per_customer - 2
"""
_STRIPE_EVENTS = """
INSERT INTO stripe_events (event_id, type, payload, stripe_created, source, status,
                           received_at, processed_at, attempts, customer_id)
SELECT format('evt_bench_%s', n),
       (ARRAY['invoice.paid', 'customer.subscription.updated',
              'invoice.payment_failed'])[1 + n % 3],
       json_build_object('id', format('evt_bench_%s', n), 'type', 'invoice.paid',
                         'data', json_build_object('object', json_build_object(
                             'id', format('in_bench_%s', n), 'amount_paid', 9900,
                             'customer', format('cus_bench_%s', 1 + n % :customers),
                             'lines', json_build_object('data', json_build_array(
                                 json_build_object('description', repeat('line ', 40))))))),
       extract(epoch FROM now())::bigint - n * 26, 'webhook',
       CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'processed' END,
       now() - make_interval(secs => n * 26), now() - make_interval(secs => n * 26), 1,
       -- Our customer, as handling records it (core/billing/event_customers.py)
       format('cust_bench_%s', lpad((1 + n % :customers)::text, 6, '0'))
FROM generate_series(1, :events) AS n
"""
_REPORTS = """
INSERT INTO usage_reports (customer_id, instance_id, active_devices, total_devices, reported_at,
                           attempts, created_at, processed_at, license_jti)
SELECT format('cust_bench_%s', lpad((1 + n % :customers)::text, 6, '0')),
       format('instance-%s', (n / :customers) % :instances), 5 + (n * 7) % 45, 60,
       :start + make_interval(secs => (n::double precision * :seconds) / :count),
       1, now(), now(), NULL
FROM generate_series(0, :count - 1) AS n
"""
_INSTANCES = """
INSERT INTO instance_usage (customer_id, instance_id, active_devices, total_devices,
                            reported_at, report_id, updated_at, first_seen_at)
SELECT DISTINCT ON (customer_id, instance_id) customer_id, instance_id, active_devices,
       total_devices, reported_at, id, now(), reported_at
FROM usage_reports ORDER BY customer_id, instance_id, reported_at DESC
"""
_METER_EVENTS = """
INSERT INTO overage_meter_events (customer_id, day, sequence, value, plan, stripe_customer_id,
                                  event_name, identifier, created_at, sent_at, attempts,
                                  refusals)
SELECT format('cust_bench_%s', lpad(c::text, 6, '0')), current_date - d, 0, 3, 'professional',
       format('cus_bench_%s', c), 'zemfyre_device_overage', format('bench-%s-%s', c, d), now(),
       now(), 1, 0
FROM generate_series(1, :customers, 4) AS c, generate_series(1, 20) AS d
"""
_AUDIT = """
INSERT INTO audit_log (created_at, actor, action, customer_id, reason, before, after, request_id)
SELECT now() - make_interval(secs => (:entries - n) * 20),
       CASE WHEN n % 5 = 0 THEN 'system' ELSE format('operator-%s', n % 20) END,
       (ARRAY['license.reissue', 'license.revoke', 'license.reinstate',
              'subscription.change_plan'])[1 + n % 4],
       format('cust_bench_%s',
              lpad((CASE WHEN n % 100 = 0 THEN 1 ELSE 1 + n % :customers END)::text, 6, '0')),
       'bench', '{"plan": "starter"}'::json, '{"plan": "professional"}'::json, md5(n::text)
FROM generate_series(1, :entries) AS n
"""


def load_console_data() -> None:
    from bench.data import load_customers
    from core.usage.rollups import rollup_day

    load_customers(CUSTOMERS)
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS - 1)
    with session_scope() as session:
        session.execute(
            text(
                "UPDATE customers SET stripe_customer_id = "
                "'cus_bench_' || ltrim(substr(customer_id, 12), '0')"
            )
        )
        session.execute(text(_LICENSES), {"customers": CUSTOMERS, "per_customer": 150})
        session.execute(text(_STRIPE_EVENTS), {"customers": CUSTOMERS, "events": STRIPE_EVENTS})
        seconds = int((now - start).total_seconds())
        session.execute(
            text(_REPORTS),
            {
                "customers": CUSTOMERS,
                "instances": INSTANCES,
                "start": start,
                "seconds": seconds,
                "count": REPORTS,
            },
        )
        session.execute(text(_INSTANCES))
        session.execute(text(_METER_EVENTS), {"customers": CUSTOMERS})
        session.execute(text(_AUDIT), {"customers": CUSTOMERS, "entries": AUDIT_ENTRIES})
    # The finished days rolled up, as beat does every night.
    for offset in range(DAYS - 1, 0, -1):
        with session_scope() as session:
            rollup_day(session, (now - timedelta(days=offset)).date(), now=now)
    with session_scope() as session:
        session.execute(text("ANALYZE"))
