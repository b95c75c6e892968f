"""`billing usage --all` benchmark: wall time with 10,000 customers and 300,000 reports.

`./scripts/bench usage-all`. 10,000 customers on rotating plans, 300,000 processed reports over the
last 7 days (5 instances each) and each instance's latest snapshot in `instance_usage`, as the
workers leave them. The command runs as its own process, exactly as an operator types it, with its
output going to a file; the time is the process's whole wall time (interpreter start, imports,
queries, rendering the table). Median of BENCH_ROUNDS (3). Target: under 2 s.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

from bench.common import (
    bench_environment,
    billing_command,
    child_env,
    median,
    print_table,
    print_verdict,
)

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "10000"))
REPORTS = int(os.environ.get("BENCH_USAGE_REPORTS", "300000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
INSTANCES = 5
TARGET = 2.0


def _snapshots() -> None:
    """Each instance's newest report as its snapshot, as the usage workers keep it."""
    from sqlalchemy import text

    from core.db import session_scope

    with session_scope() as session:
        session.execute(
            text(
                """
                INSERT INTO instance_usage (customer_id, instance_id, active_devices,
                                            total_devices, reported_at, report_id, updated_at)
                SELECT DISTINCT ON (customer_id, instance_id)
                       customer_id, instance_id, active_devices, total_devices, reported_at, id,
                       now()
                FROM usage_reports
                ORDER BY customer_id, instance_id, reported_at DESC
                """
            )
        )
        session.execute(text("ANALYZE"))


def _run_once(output: str) -> float:
    started = time.perf_counter()
    with open(output, "w") as sink:
        subprocess.run(
            billing_command("usage", "--all"),
            env=child_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return time.perf_counter() - started


def main() -> None:
    with bench_environment("usage_all") as env:
        from bench.data import load_customers, load_reports

        now = datetime.now(UTC)
        print(f"loading {CUSTOMERS} customers and {REPORTS} reports of the last 7 days...")
        load_customers(CUSTOMERS)
        load_reports(
            REPORTS,
            customers=CUSTOMERS,
            instances=INSTANCES,
            start=now - timedelta(days=6, hours=12),
            seconds=6 * 86400,
            processed=True,
        )
        _snapshots()

        output = str(env.data_dir / "usage-all.txt")
        _run_once(output)  # warm the page cache and PostgreSQL's buffers once
        times = [_run_once(output) for _ in range(ROUNDS)]
        with open(output) as printed:
            lines = printed.read().splitlines()
        wall = median(times)
        print_table(
            f"billing usage --all, {CUSTOMERS} customers, {REPORTS} reports",
            [
                ("wall time, median (s)", f"{wall:.2f}"),
                ("runs (s)", ", ".join(f"{t:.2f}" for t in times)),
                ("first line printed", lines[0] if lines else "-"),
                ("lines printed", str(len(lines))),
            ],
            ("measure", "value"),
        )
        print_verdict(
            "usage-all",
            f"{wall:.2f} s = {wall / TARGET:.2f} x the limit",
            f"< {TARGET:.0f} s",
            wall < TARGET,
        )


if __name__ == "__main__":
    main()
