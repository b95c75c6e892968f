"""Workers benchmark: stored usage reports drained by one `billing worker` process.

`./scripts/bench workers`. 100,000 pending reports (stored as the ingress stores them, spread over
1,000 customers on real plans, 5 instances each) are drained by ONE worker process
(`billing worker -Q usage,default --pool threads -c 2`):

- batch path (the headline): `tasks.usage.process_report_batch` tasks, each given a batch
  with SKIP LOCKED and processing it set-based (USAGE_PROCESS_BATCH_SIZE, default 500);
- ingress path (the target): one `tasks.usage.process_report_batch` task per small group of
  reports (BENCH_INGRESS_GROUP reports a group, default 8: the worst case, what an API process
  published per group commit before its publishes were coalesced; BENCH_PER_REPORT reports,
  default 20,000), queued while the (started) worker does not consume the usage queue; the clock
  starts when it begins to. The reports waited in the backlog, so each task tops its group up to
  USAGE_PROCESS_BATCH_SIZE and the tasks of the groups already taken find nothing to do
  (core/usage/processing.py).

The clock runs until every report has `processed_at`; then each report must have been processed
exactly once (`attempts` = 1). Target: the ingress's tasks drained at >= 5,000 reports/s
by one worker process.
"""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    bench_environment,
    billing_command,
    print_table,
    print_verdict,
    running,
    wait_until,
)
from bench.profiles import profile_summary, profiled

REPORTS = int(os.environ.get("BENCH_REPORTS", "100000"))
PER_REPORT = int(os.environ.get("BENCH_PER_REPORT", "20000"))
INGRESS_GROUP = int(os.environ.get("BENCH_INGRESS_GROUP", "8"))
CUSTOMERS = 1000
INSTANCES = 5
POOL = os.environ.get("BENCH_WORKER_POOL", "threads")
CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "2")
TARGET = 5000.0
TIMEOUT = 1800.0
PROFILE_SECONDS = 3


def _counts(since: datetime) -> tuple[int, int, int]:
    """(pending, processed, processed more than once) of the reports made at/after `since`."""
    from sqlalchemy import text

    from core.db import session_scope

    with session_scope() as session:
        row = session.execute(
            text(
                """
                SELECT count(*) FILTER (WHERE processed_at IS NULL),
                       count(*) FILTER (WHERE processed_at IS NOT NULL),
                       count(*) FILTER (WHERE attempts > 1)
                FROM usage_reports WHERE reported_at >= :since
                """
            ),
            {"since": since},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _pending_ids(since: datetime) -> list[int]:
    from sqlalchemy import text

    from core.db import session_scope

    with session_scope() as session:
        return list(
            session.scalars(
                text(
                    "SELECT id FROM usage_reports WHERE reported_at >= :since "
                    "AND processed_at IS NULL ORDER BY id"
                ),
                {"since": since},
            )
        )


def _worker_command(queues: str = "usage,default") -> list[str]:
    return billing_command("worker", "-Q", queues, "--pool", POOL, "--concurrency", CONCURRENCY)


def _wait_for_worker() -> None:
    from tasks.maintenance import ping

    ping.apply_async().get(timeout=120)


def _drain(since: datetime, started: float) -> tuple[float, int, int]:
    """Seconds from `started` until nothing made at/after `since` is pending; counts."""
    done = wait_until(lambda: _counts(since)[0] == 0, timeout=TIMEOUT, interval=0.1)
    elapsed = time.perf_counter() - started
    if not done:
        raise TimeoutError("the worker did not drain the reports")
    _, processed, repeated = _counts(since)
    return elapsed, processed, repeated


def batch_path(since: datetime) -> tuple[float, int, int, int]:
    from core.db import session_scope  # noqa: F401 - the engine is made before the clock starts
    from core.settings import get_settings
    from tasks.usage import process_report_batch

    batch = get_settings().usage_process_batch_size
    ids = _pending_ids(since)
    tasks = math.ceil(len(ids) / batch)
    with running(_worker_command()):
        _wait_for_worker()
        started = time.perf_counter()
        with process_report_batch.app.producer_or_acquire() as producer:
            for first in range(0, len(ids), batch):
                group = ids[first : first + batch]
                process_report_batch.apply_async(args=(group,), producer=producer)
        elapsed, processed, repeated = _drain(since, started)
    return elapsed, processed, repeated, tasks


def per_report_path(since: datetime, profile: Path) -> tuple[float, int, int, float]:
    from tasks.usage import process_report_batch

    ids = _pending_ids(since)
    # The worker starts without the usage queue; the tasks are published meanwhile; the clock
    # starts when it begins consuming them: the drain alone, not the publishing or the start-up.
    with running(_worker_command("default")) as worker:
        _wait_for_worker()
        published = time.perf_counter()
        with process_report_batch.app.producer_or_acquire() as producer:
            for first in range(0, len(ids), INGRESS_GROUP):
                group = ids[first : first + INGRESS_GROUP]
                process_report_batch.apply_async(args=(group,), producer=producer)
        publish_seconds = time.perf_counter() - published
        with profiled(worker.pid, PROFILE_SECONDS, profile):
            started = time.perf_counter()
            process_report_batch.app.control.add_consumer("usage", reply=True, limit=1, timeout=10)
            elapsed, processed, repeated = _drain(since, started)
        # The tasks of groups already drained still run (each a no-op): wait for the queue to
        # empty so the next figures are not theirs, but the clock above has stopped.
        _wait_for_queue_to_empty()
    return elapsed, processed, repeated, publish_seconds


def _wait_for_queue_to_empty() -> None:
    from workers.celery_app import celery_app

    def empty() -> bool:
        with celery_app.connection_for_write() as connection:
            # kombu's own count of the queue's messages (key prefix and priorities included).
            return int(connection.default_channel._size("usage")) == 0

    wait_until(empty, timeout=TIMEOUT, interval=0.2)


def main() -> None:
    with bench_environment("workers") as env:
        from bench.data import load_customers, load_reports

        now = datetime.now(UTC).replace(microsecond=0)
        batch_since = now - timedelta(days=2)
        per_report_since = now - timedelta(hours=12)
        print(
            f"loading {CUSTOMERS} customers, {REPORTS} + {PER_REPORT} pending reports "
            f"({INSTANCES} instances each)..."
        )
        load_customers(CUSTOMERS)
        load_reports(
            REPORTS,
            customers=CUSTOMERS,
            instances=INSTANCES,
            start=batch_since,
            seconds=20 * 3600,
            processed=False,
        )
        print(f"worker: one process, pool {POOL}, concurrency {CONCURRENCY}")
        # The per-report set is stored after the batch run, so the batch tasks cannot take it.
        batch_seconds, batch_done, batch_repeated, tasks = batch_path(batch_since)
        load_reports(
            PER_REPORT,
            customers=CUSTOMERS,
            instances=INSTANCES,
            start=per_report_since,
            seconds=6 * 3600,
            processed=False,
        )
        profile = env.data_dir / "worker.profile"
        single_seconds, single_done, single_repeated, publish_seconds = per_report_path(
            per_report_since, profile
        )

        ingress_tasks = math.ceil(PER_REPORT / INGRESS_GROUP)
        batch_rate = batch_done / batch_seconds
        single_rate = single_done / single_seconds
        print_table(
            "Workers (one worker process; until every report has processed_at)",
            [
                (
                    f"batch tasks ({tasks} x process_report_batch)",
                    str(batch_done),
                    f"{batch_seconds:.1f}",
                    f"{batch_rate:.0f}",
                    str(batch_repeated),
                ),
                (
                    f"ingress groups ({INGRESS_GROUP} reports a task, {ingress_tasks} tasks)",
                    str(single_done),
                    f"{single_seconds:.1f}",
                    f"{single_rate:.0f}",
                    str(single_repeated),
                ),
            ],
            ("path", "reports", "seconds", "reports/s", "processed twice"),
        )
        print(f"(the ingress-path tasks were published before the clock: {publish_seconds:.1f} s)")
        exactly_once = batch_repeated == 0 and single_repeated == 0
        exactly_once &= batch_done == REPORTS and single_done == PER_REPORT
        print(f"each report processed exactly once: {exactly_once}")
        print(f"\nprofile of the worker draining the ingress's tasks ({PROFILE_SECONDS} s):")
        print("\n".join(profile_summary(profile, top=8)))
        print_verdict(
            "workers",
            f"ingress path {single_rate:.0f} reports/s = {single_rate / TARGET:.2f} x target; "
            f"batch path {batch_rate:.0f} reports/s = {batch_rate / TARGET:.2f} x target",
            f"ingress path >= {TARGET:.0f} reports/s per worker process, exactly once",
            single_rate >= TARGET and exactly_once,
        )


if __name__ == "__main__":
    main()
