"""A worker SIGKILLed in the middle of a task: another worker runs it again, the effect is once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import pg_scalar
from tests.faults.figures import record
from tests.faults.harness import (
    RedisServer,
    Services,
    kill,
    service_env,
    services,
    wait_for_workers,
)
from tests.faults.scenarios import deliver_webhook
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import (
    license_claims,
    license_count,
    new_customer,
    start_checkout,
    subscription_row,
)

pytestmark = pytest.mark.faults

# Redis hands an unacknowledged task of a dead worker to another after this many seconds.
VISIBILITY_TIMEOUT = 4
# How often the live worker scans for such tasks (kombu's own default would add up to ~100 s).
RESTORE_INTERVAL = 1
# How long the stand-in holds the handler's read of the subscription: the kill lands inside it.
STRIPE_DELAY = 30.0
RECEIVED = "Task tasks.billing.process_events["


def worker_that_received(running: Services, names: list[str]) -> str | None:
    """The worker whose log shows it took the event task (each worker logs what it receives)."""
    for name in names:
        if RECEIVED in running.logs[name].read_text(errors="replace"):
            return name
    return None


def test_worker_killed_mid_task_runs_again_on_another_worker_once(
    stand_in: Any, tmp_path: Path
) -> None:
    figures = record("worker SIGKILLed mid-task")
    customer_id = new_customer(email="killed@example.com")
    events = start_checkout(stand_in, customer_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")

    with RedisServer(tmp_path) as redis:
        env = service_env(
            redis.url,
            CELERY_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT),
            CELERY_UNACKED_RESTORE_INTERVAL_SECONDS=str(RESTORE_INTERVAL),
        )
        with services(env, tmp_path) as running, httpx.Client(timeout=10) as http:
            api_url = running.api()
            names = ["worker-1", "worker-2"]
            workers = {name: running.worker(name) for name in names}
            wait_for_workers(running, names)

            stand_in.set_delay(STRIPE_DELAY, "/v1/subscriptions/")
            status, _, _ = deliver_webhook(http, api_url, completed)
            figures.count(status)
            assert status == 200
            # The worker is inside the handler: its read of Stripe is held by the stand-in.
            wait_until(lambda: stand_in.delayed_started >= 1, timeout=30)
            first = wait_until(lambda: worker_that_received(running, names), timeout=10)
            (other,) = set(names) - {first}
            # The rerun is slowed a little too, so the stand-in counts it as the second read.
            stand_in.set_delay(0.5, "/v1/subscriptions/")
            kill(workers[first])
            killed_at = time.monotonic()
            figures.faults.append(f"SIGKILL of the worker running the task ({first})")
            assert pg_scalar("SELECT status FROM stripe_events") == "pending"

            # Redis gives the unacknowledged task back after the visibility timeout; the other
            # worker picks it up and runs it to the end.
            wait_until(lambda: worker_that_received(running, [other]), timeout=60)
            wait_until(
                lambda: pg_scalar("SELECT status FROM stripe_events") == "processed", timeout=60
            )
            redelivered_after = time.monotonic() - killed_at
            assert workers[other].poll() is None

    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    assert license_claims(customer_id)["plan"] == "starter"
    # Trial license, then exactly one for the paid plan: the killed run left nothing behind.
    assert license_count(customer_id) == 2
    assert pg_scalar("SELECT attempts FROM stripe_events") == 1
    # Both runs read the subscription from Stripe; only the second one's transaction committed.
    assert stand_in.delayed_started == 2
    figures.stored = int(pg_scalar("SELECT count(*) FROM stripe_events"))  # type: ignore[arg-type]
    figures.processed = int(
        pg_scalar("SELECT count(*) FROM stripe_events WHERE status = 'processed'")  # type: ignore[arg-type]
    )
    figures.notes.update(
        {
            "task runs": "2 (killed one rolled back, the other committed)",
            "licenses issued for the change": license_count(customer_id) - 1,
            "visibility timeout / restore interval (s)": (
                f"{VISIBILITY_TIMEOUT} / {RESTORE_INTERVAL}"
            ),
            "kill to effect committed by the other worker (s)": round(redelivered_after, 1),
        }
    )
