"""Growth benchmark: 120 days of usage at 200,000 reports a day with a 30-day retention.

`./scripts/bench growth`. Each simulated UTC day's reports are generated straight into the
database (bench/data.py, processed, as the workers leave them), then the night runs as beat runs
it: the day's rollup (`rollup_day`) and the prune (`core.retention.pruning.prune`, batches of
PRUNE_BATCH_SIZE). The last simulated day is yesterday. Printed: table and index sizes every
few days, the rollup's and the prune's time per night, and the ingest ratio on the first and on
the last day, measured as bench ingress measures it (`billing api` against a bare FastAPI app,
alternating rounds, real/bare throughput, median of BENCH_ROUNDS).

Done when: the sizes level off once the retention window is full (total size on the last day
within 10 % of that at twice the retention), ingest on the last day within 10 % of the first,
and no night's prune takes a minute.

Options (environment): BENCH_GROWTH_DAYS (120), BENCH_GROWTH_REPORTS_PER_DAY (200000),
BENCH_GROWTH_RETENTION_DAYS (30), BENCH_GROWTH_CUSTOMERS (1000, 5 instances each),
BENCH_GROWTH_SIZE_EVERY (10 days); BENCH_ROUNDS, BENCH_DURATION as for bench ingress.
A quick run: BENCH_GROWTH_DAYS=20 BENCH_GROWTH_REPORTS_PER_DAY=20000
BENCH_GROWTH_RETENTION_DAYS=5 BENCH_ROUNDS=1.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta

from bench.common import (
    BenchEnv,
    bench_environment,
    billing_command,
    print_table,
    print_verdict,
)

DAYS = int(os.environ.get("BENCH_GROWTH_DAYS", "120"))
REPORTS_PER_DAY = int(os.environ.get("BENCH_GROWTH_REPORTS_PER_DAY", "200000"))
RETENTION_DAYS = int(os.environ.get("BENCH_GROWTH_RETENTION_DAYS", "30"))
CUSTOMERS = int(os.environ.get("BENCH_GROWTH_CUSTOMERS", "1000"))
INSTANCES = 5
SIZE_EVERY = int(os.environ.get("BENCH_GROWTH_SIZE_EVERY", "10"))
INGEST_TOLERANCE = 0.10
PRUNE_LIMIT_SECONDS = 60.0

SIZES_SQL = """
SELECT pg_relation_size('usage_reports'), pg_indexes_size('usage_reports'),
       pg_total_relation_size('usage_daily'), pg_total_relation_size('stripe_events')
"""
INDEX_SIZES_SQL = """
SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes
WHERE relname = 'usage_reports' ORDER BY indexrelname
"""


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}"


def _sizes() -> tuple[int, list[int], dict[str, int]]:
    from sqlalchemy import func, select, text

    from core.db import session_scope
    from models import UsageReport

    with session_scope() as session:
        rows = int(session.scalar(select(func.count()).select_from(UsageReport)) or 0)
        sizes = [int(value) for value in session.execute(text(SIZES_SQL)).one()]
        indexes = {name: int(size) for name, size in session.execute(text(INDEX_SIZES_SQL))}
    return rows, sizes, indexes


def _night(day: date) -> tuple[float, float, float, int]:
    """The night after `day`, as beat runs it: the day's rollup, then the prune."""
    from core.db import session_scope
    from core.retention.pruning import prune
    from core.usage.rollups import begin_rollup, rollup_day

    night = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    started = time.perf_counter()
    with session_scope() as session:
        begin_rollup(session, day, now=night)
    with session_scope() as session:
        rollup_day(session, day, now=night)
    rollup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = prune(session_scope, now=night + timedelta(hours=2, minutes=30))
    prune_seconds = time.perf_counter() - started
    vacuum_seconds = sum(result.vacuum_seconds for result in results)
    return rollup_seconds, prune_seconds, vacuum_seconds, sum(result.rows for result in results)


def _ingest_ratio(customers: list[tuple[str, str]], env: BenchEnv) -> float:
    """Bench ingress's measure (real/bare usage throughput, median of its rounds); the reports
    it stored (stamped today, after every simulated day) are removed again."""
    from sqlalchemy import text

    from bench import ingress
    from core.db import session_scope

    commands = {
        "bare": [sys.executable, "-m", "bench.bare_server"],
        "real": billing_command("api"),
    }
    requests = ingress.usage_requests(customers, ingress.REQUESTS)
    profile = env.data_dir / f"growth-{time.monotonic_ns()}.profile"
    results = ingress.serve_and_load_alternating(commands, requests, env, profile)
    ratios = [
        real["rps"] / bare["rps"]
        for bare, real in zip(results["bare"], results["real"], strict=True)
    ]
    today = datetime.now(UTC).date().isoformat()
    with session_scope() as session:
        session.execute(text(f"DELETE FROM usage_reports WHERE reported_at >= DATE '{today}'"))
    print(f"  ingest real/bare rounds: {', '.join(f'{r:.2f}' for r in ratios)}")
    return statistics.median(ratios)


def main() -> None:
    with bench_environment(
        "growth",
        RATE_LIMIT_USAGE_PER_INSTANCE="1000000000",
        RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="1000000000",
        USAGE_REPORT_RETENTION_DAYS=str(RETENTION_DAYS),
    ) as env:
        from bench.data import load_customers, load_reports
        from bench.ingress import licensed_customers

        print(
            f"growth: {DAYS} days x {REPORTS_PER_DAY} reports ({CUSTOMERS} customers x "
            f"{INSTANCES} instances), retention {RETENTION_DAYS} days"
        )
        load_customers(CUSTOMERS)
        licensed = licensed_customers(email_prefix="ingress")
        first_day = datetime.now(UTC).date() - timedelta(days=DAYS)
        size_rows, rollups, prunes, ingest = [], [], [], {}
        for number in range(1, DAYS + 1):
            day = first_day + timedelta(days=number - 1)
            started = time.perf_counter()
            load_reports(
                REPORTS_PER_DAY,
                customers=CUSTOMERS,
                instances=INSTANCES,
                start=datetime.combine(day, datetime.min.time(), tzinfo=UTC),
                seconds=86400,
                processed=True,
            )
            load_seconds = time.perf_counter() - started
            if number in (1, DAYS):
                ingest[number] = _ingest_ratio(licensed, env)
            rollup_seconds, prune_seconds, vacuum_seconds, pruned = _night(day)
            rollups.append(rollup_seconds)
            prunes.append(prune_seconds)
            print(
                f"day {number:3} {day}: loaded in {load_seconds:.1f} s, rollup "
                f"{rollup_seconds:.2f} s, prune {prune_seconds:.2f} s ({pruned} rows; "
                f"vacuum {vacuum_seconds:.2f} s of it)",
                flush=True,
            )
            if number % SIZE_EVERY == 0 or number in (1, 2 * RETENTION_DAYS, DAYS):
                rows, sizes, indexes = _sizes()
                size_rows.append((number, rows, sizes, indexes))
                print(
                    f"  sizes: {rows} rows, table {_mb(sizes[0])} MB, indexes {_mb(sizes[1])} MB "
                    f"({', '.join(f'{name} {_mb(size)}' for name, size in indexes.items())}), "
                    f"usage_daily {_mb(sizes[2])} MB",
                    flush=True,
                )

        index_names = sorted(size_rows[-1][3])
        print_table(
            "Sizes after each night's prune (MB)",
            [
                (
                    str(number),
                    str(rows),
                    _mb(sizes[0]),
                    _mb(sizes[1]),
                    *(_mb(indexes.get(name, 0)) for name in index_names),
                    _mb(sizes[2]),
                )
                for number, rows, sizes, indexes in size_rows
            ],
            (
                "day",
                "usage_reports rows",
                "table",
                "indexes",
                *(name.removeprefix("ix_usage_reports_") for name in index_names),
                "usage_daily",
            ),
        )
        steady = prunes[RETENTION_DAYS + 1 :] or prunes
        print_table(
            "Nightly jobs (seconds)",
            [
                ("rollup", f"{statistics.median(rollups):.2f}", f"{max(rollups):.2f}"),
                (
                    "prune (once the window is full)",
                    f"{statistics.median(steady):.2f}",
                    f"{max(steady):.2f}",
                ),
            ],
            ("job", "median", "max"),
        )
        totals = {number: sizes[0] + sizes[1] for number, _, sizes, _ in size_rows}
        full = min(2 * RETENTION_DAYS, DAYS)
        level = totals[DAYS] / totals[full] if full in totals else float("nan")
        drift = ingest[DAYS] / ingest[1] - 1
        print(
            f"usage_reports table + indexes: {_mb(totals[full])} MB on day {full}, "
            f"{_mb(totals[DAYS])} MB on day {DAYS} ({level:.2f}x)"
        )
        print(
            f"ingest real/bare: {ingest[1]:.2f} on day 1, {ingest[DAYS]:.2f} on day {DAYS} "
            f"({drift:+.1%})"
        )
        passed = (
            level <= 1 + INGEST_TOLERANCE
            and abs(drift) <= INGEST_TOLERANCE
            and max(steady) < PRUNE_LIMIT_SECONDS
        )
        print_verdict(
            "growth",
            f"size {level:.2f}x, ingest {drift:+.1%}, prune max {max(steady):.1f} s",
            "size <= 1.10x, ingest within 10 %, prune < 60 s",
            passed,
        )


if __name__ == "__main__":
    main()
