"""End-to-end benchmark: the ingress under load for 60 s with `billing worker` draining it.

`./scripts/bench e2e`. One `billing api` process and one `billing worker` process, both with their
default settings, PostgreSQL and Redis on loopback. The generator (bench/loadgen.py) sends
distinct usage reports over 32 keep-alive connections for BENCH_DURATION (60) s, as fast as the
API answers (the ingest rate). Measured: the accepted reports (2xx), the backlog (accepted but
not yet processed) the moment the load ends, and the time until every accepted report is
processed. Target: every accepted report processed, exactly once, and the backlog at the
end below 5 s of ingest.

Options (environment): BENCH_CONCURRENCY (32), BENCH_DURATION (60 s), BENCH_CUSTOMERS (50).
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import (
    bench_environment,
    billing_command,
    free_port,
    load,
    print_table,
    print_verdict,
    running,
    wait_for_http,
    wait_until,
)
from bench.ingress import licensed_customers, usage_requests
from bench.profiles import profile_summary, profiled

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
DURATION = float(os.environ.get("BENCH_DURATION", "60"))
WARMUP = 2.0
# More than the API answers in the run (each request is sent once).
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300000"))
BACKLOG_TARGET_SECONDS = 5.0
DRAIN_TIMEOUT = 600.0
PROFILE_SECONDS = 10.0


def _counts() -> tuple[int, int, int]:
    """(stored, pending, processed more than once) usage reports."""
    from sqlalchemy import text

    from core.db import session_scope

    with session_scope() as session:
        row = session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL), "
                "count(*) FILTER (WHERE attempts > 1) FROM usage_reports"
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _wait_for_worker() -> None:
    from tasks.maintenance import ping

    ping.apply_async().get(timeout=120)


def main() -> None:
    with bench_environment(
        "e2e",
        RATE_LIMIT_USAGE_PER_INSTANCE="1000000000",
        RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="1000000000",
    ) as env:
        customers = licensed_customers(int(os.environ.get("BENCH_CUSTOMERS", "50")))
        requests = usage_requests(customers, REQUESTS)
        port = free_port()
        print(
            f"load: {CONCURRENCY} keep-alive connections, {WARMUP:.0f} s warm-up + "
            f"{DURATION:.0f} s; one `billing api`, one `billing worker`, default settings"
        )
        api_profile, worker_profile = env.data_dir / "api.profile", env.data_dir / "worker.profile"
        with (
            running(billing_command("worker")) as worker,
            running([*billing_command("api"), "--port", str(port)]) as api,
        ):
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            _wait_for_worker()
            # 10 s of each process sampled in the middle of the run.
            middle = WARMUP + max(0.0, DURATION / 2 - PROFILE_SECONDS / 2)
            with (
                profiled(api.pid, PROFILE_SECONDS, api_profile, delay=middle),
                profiled(
                    worker.pid, PROFILE_SECONDS, worker_profile, delay=middle, subprocesses=True
                ),
            ):
                result: dict[str, Any] = load(
                    port,
                    requests,
                    env.data_dir,
                    concurrency=CONCURRENCY,
                    duration=DURATION,
                    warmup=WARMUP,
                )
            ended = time.perf_counter()
            stored, backlog, _ = _counts()
            drained = wait_until(lambda: _counts()[1] == 0, timeout=DRAIN_TIMEOUT, interval=0.2)
            drain_seconds = time.perf_counter() - ended
        stored, pending, repeated = _counts()
        accepted = sum(n for code, n in result["statuses"].items() if code.startswith("2"))
        # Accepted in the whole run (warm-up included): every one must be stored.
        ingest_rate = result["rps"]
        backlog_seconds = backlog / ingest_rate if ingest_rate else float("inf")
        print_table(
            "End to end (ingress under load, worker draining)",
            [
                (
                    f"{ingest_rate:.0f}",
                    f"{result['p99_ms']:.1f}",
                    str(accepted),
                    str(stored),
                    f"{backlog} ({backlog_seconds:.2f} s of ingest)",
                    f"{drain_seconds:.1f}",
                    str(pending),
                    str(repeated),
                ),
            ],
            (
                "ingest req/s",
                "p99 ms",
                "2xx (measured)",
                "stored",
                "backlog at end",
                "drained after s",
                "never processed",
                "processed twice",
            ),
        )
        for name, path in (("billing api", api_profile), ("billing worker", worker_profile)):
            print(f"\nprofile of `{name}` ({PROFILE_SECONDS:.0f} s mid-run, py-spy):")
            print("\n".join(profile_summary(path, top=6)))
        passed = (
            drained
            and pending == 0
            and repeated == 0
            and stored >= accepted
            and backlog_seconds < BACKLOG_TARGET_SECONDS
        )
        print_verdict(
            "e2e",
            f"backlog at the end {backlog_seconds:.2f} s of ingest at {ingest_rate:.0f} reports/s; "
            f"every accepted report processed once: {drained and pending == 0 and repeated == 0}",
            f"backlog < {BACKLOG_TARGET_SECONDS:.0f} s of ingest, all processed",
            passed,
        )


if __name__ == "__main__":
    main()
