"""Rollup benchmark: the daily rollup over 1,000,000 reports of one day, next to raw SQL in psql.

`./scripts/bench rollup`. One UTC day holds BENCH_ROLLUP_REPORTS (1,000,000) reports of 10,000
customers x 5 instances (other days hold reports too, as in production). Timed, alternately, with
`usage_daily` emptied before each run:

- the product: `core.usage_rollups.rollup_day` (what `billing tasks run rollup` and beat run),
  in its own transaction, committed;
- raw SQL: the same aggregate (INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE) typed
  into `psql`, timed by psql's own `\\timing`.

Median of BENCH_ROUNDS (3) each. Target: product within 1.5x of raw SQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import UTC, date, datetime, timedelta

from bench.common import BenchEnv, bench_environment, median, print_table, print_verdict

REPORTS = int(os.environ.get("BENCH_ROLLUP_REPORTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CUSTOMERS = 10000
INSTANCES = 5
TARGET = 1.5

RAW_SQL = """
INSERT INTO usage_daily (customer_id, instance_id, day, reports, min_active, avg_active,
                         max_active, max_total, computed_at)
SELECT customer_id, instance_id, DATE '{day}', count(*), min(active_devices),
       avg(active_devices)::double precision, max(active_devices), max(total_devices), now()
FROM usage_reports
WHERE reported_at >= TIMESTAMPTZ '{day} 00:00:00+00'
  AND reported_at < TIMESTAMPTZ '{next} 00:00:00+00'
GROUP BY customer_id, instance_id
ON CONFLICT (customer_id, instance_id, day) DO UPDATE SET
  reports = excluded.reports, min_active = excluded.min_active, avg_active = excluded.avg_active,
  max_active = excluded.max_active, max_total = excluded.max_total,
  computed_at = excluded.computed_at
WHERE usage_daily.reports IS DISTINCT FROM excluded.reports
   OR usage_daily.min_active IS DISTINCT FROM excluded.min_active
   OR usage_daily.avg_active IS DISTINCT FROM excluded.avg_active
   OR usage_daily.max_active IS DISTINCT FROM excluded.max_active
   OR usage_daily.max_total IS DISTINCT FROM excluded.max_total;
"""


def _empty_daily() -> None:
    from sqlalchemy import text

    from core.db import session_scope

    with session_scope() as session:
        session.execute(text("TRUNCATE usage_daily"))


def _product(day: date) -> tuple[float, int]:
    from core.db import session_scope
    from core.usage.rollups import rollup_day

    started = time.perf_counter()
    with session_scope() as session:
        result = rollup_day(session, day)
    return time.perf_counter() - started, result.rows_total


def _raw(env: BenchEnv, day: date) -> float:
    sql = RAW_SQL.format(day=day.isoformat(), next=(day + timedelta(days=1)).isoformat())
    out = subprocess.run(
        ["psql", env.psql_dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        input="\\timing on\n" + sql,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Time: ([\d.]+) ms", out)
    if match is None:
        raise RuntimeError(f"psql printed no timing: {out!r}")
    return float(match.group(1)) / 1000


def main() -> None:
    with bench_environment("rollup") as env:
        from bench.data import load_customers, load_reports

        day = datetime.now(UTC).date() - timedelta(days=1)
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        print(f"loading {CUSTOMERS} customers and {REPORTS} processed reports of {day}...")
        load_started = time.perf_counter()
        load_customers(CUSTOMERS)
        load_reports(
            REPORTS,
            customers=CUSTOMERS,
            instances=INSTANCES,
            start=start,
            seconds=86400,
            processed=True,
        )
        # The days around it, so the rollup has to pick its day out of a bigger table.
        for other in (start - timedelta(days=1), start + timedelta(days=1)):
            load_reports(
                REPORTS // 4,
                customers=CUSTOMERS,
                instances=INSTANCES,
                start=other,
                seconds=86400,
                processed=True,
            )
        print(f"loaded in {time.perf_counter() - load_started:.1f} s")

        product_times, raw_times, rows = [], [], 0
        _empty_daily()
        _product(day)  # warm the cache and the process (imports, engine) for both sides
        for _ in range(ROUNDS):
            _empty_daily()
            raw_times.append(_raw(env, day))
            _empty_daily()
            seconds, rows = _product(day)
            product_times.append(seconds)
        rerun, _ = _product(day)  # unchanged day: nothing is rewritten

        product, raw = median(product_times), median(raw_times)
        ratio = product / raw
        print_table(
            f"Daily rollup of {REPORTS} reports ({rows} usage_daily rows), median of {ROUNDS}",
            [
                ("rollup_day (product, committed)", f"{product:.3f}"),
                ("raw SQL in psql (\\timing)", f"{raw:.3f}"),
                ("rollup_day again, day unchanged", f"{rerun:.3f}"),
            ],
            ("run", "seconds"),
        )
        print_verdict("rollup", f"product / raw SQL = {ratio:.2f}", f"<= {TARGET}", ratio <= TARGET)


if __name__ == "__main__":
    main()
