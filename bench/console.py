"""Console benchmark: the operator console's pages on a big database.

`./scripts/bench console`. bench/console_data.py loads 10,000 customers, 1,000,000 usage reports,
100,000 Stripe events (and licenses, meter events, 100,000 audit entries) straight into
PostgreSQL. A signed-in operator then asks each page BENCH_CONSOLE_REQUESTS (200) times through
the app in-process (ASGI, no network: server time): the customers page unfiltered and searched
(a different prefix each time), the page of the customer with the fullest timeline, and the audit
page. Prints p50/p95 per page and the SQL statements one request of each runs, with the scans
PostgreSQL's plan uses for each. Target: p95 under 100 ms for every page.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

from bench.common import bench_environment, print_table, print_verdict

REQUESTS = int(os.environ.get("BENCH_CONSOLE_REQUESTS", "200"))
TARGET_MS = 100.0
ORIGIN = "http://testserver"
SCAN = re.compile(
    r"((?:Parallel )?(?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)"
    r"(?: using \w+)?(?: on \w+)?)"
)


class StatementLog:
    """The SQL statements the app runs while `capturing`, with their parameters."""

    def __init__(self) -> None:
        self.capturing = False
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if self.capturing:
            self.statements.append((statement, params))


def _scans(statement: str, params: Any) -> str:
    """The scan nodes of the statement's plan (EXPLAIN, same parameters)."""
    from core.db import get_engine

    if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
        return "(write)"
    connection = get_engine().raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        connection.close()
    return ", ".join(dict.fromkeys(SCAN.findall(plan))) or "(no table scan)"


def _summary(statement: str) -> str:
    flat = " ".join(statement.split())
    tables = sorted(set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", flat)))
    verb = flat.split(" ", 1)[0]
    return f"{verb} {', '.join(tables) or flat[:60]}"


def main() -> None:
    with bench_environment(
        "console",
        RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="100000000",
        # Loading a million rows takes longer than a request may.
        DATABASE_STATEMENT_TIMEOUT_MS="0",
    ):
        from fastapi.testclient import TestClient
        from sqlalchemy import event

        from api.app import create_app
        from bench.console_data import FULL_TIMELINE_CUSTOMER, load_console_data
        from core.api_keys import create_api_key
        from core.db import get_engine, session_scope

        print("loading 10,000 customers, 1,000,000 usage reports, 100,000 Stripe events...")
        started = time.perf_counter()
        load_console_data()
        print(f"loaded in {time.perf_counter() - started:.0f} s")
        with session_scope() as session:
            key = create_api_key(session, "bench-operator").key
        log = StatementLog()
        event.listen(get_engine(), "before_cursor_execute", log)

        with TestClient(create_app()) as client:
            answer = client.post(
                "/console/login",
                data={"api_key": key},
                headers={"Origin": ORIGIN},
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text
            pages: list[tuple[str, Callable[[int], str]]] = [
                # The floor: a page that runs no query, through the same app and client.
                ("(floor) sign-in form, no query", lambda n: "/console/login"),
                ("customers, unfiltered", lambda n: f"/console/customers?page={1 + n % 5}"),
                ("customers, search", lambda n: f"/console/customers?q=bench{1 + n % 997}"),
                (
                    "customer, full timeline",
                    lambda n: f"/console/customers/{FULL_TIMELINE_CUSTOMER}",
                ),
                ("audit", lambda n: "/console/audit"),
                (
                    "audit, one customer",
                    lambda n: f"/console/audit?customer={FULL_TIMELINE_CUSTOMER}",
                ),
                # The operations pages (bench/console_operations.py loads at-risk data of its own).
                ("overview (with scheduled jobs)", lambda n: "/console/"),
                ("money at risk", lambda n: "/console/at-risk"),
                ("Stripe events", lambda n: "/console/events"),
                ("Stripe events, failed", lambda n: "/console/events?state=failed"),
                ("meter events", lambda n: "/console/meter-events"),
                ("billing issues", lambda n: "/console/billing-issues"),
            ]
            rows, listings, passed = [], [], True
            for name, path_of in pages:
                for n in range(10):  # warm-up: imports, templates, caches
                    assert client.get(path_of(n)).status_code == 200
                times = []
                for n in range(REQUESTS):
                    path = path_of(n)
                    began = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                times.sort()
                p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95) - 1]
                passed &= p95 < TARGET_MS or name.startswith("(floor)")
                log.statements.clear()
                log.capturing = True
                client.get(path_of(1))
                log.capturing = False
                statements = list(log.statements)
                rows.append((name, f"{p50:.1f}", f"{p95:.1f}", str(len(statements))))
                listings.append((name, [(_summary(s), _scans(s, p)) for s, p in statements]))
        print_table(
            f"Console pages, server time over {REQUESTS} requests each (ms)",
            rows,
            ("page", "p50", "p95", "queries"),
        )
        for name, statements in listings:
            print(f"\n{name}: the statements of one request")
            for number, (summary, scans) in enumerate(statements, 1):
                print(f"  {number:2}. {summary:60} {scans}")
        print(f"\nload average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        worst = max(float(row[2]) for row in rows[1:])
        print_verdict("console", f"worst p95 {worst:.1f} ms", f"< {TARGET_MS:.0f} ms", passed)


if __name__ == "__main__":
    main()
