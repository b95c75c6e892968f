"""Proving that no Stripe call waits while a customer row is locked, and waiting until a
session waits on a lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic, sleep
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.conftest import TEST_DATABASE_URL


def run_while_stripe_is_slow(
    stand_in: Any, path_prefix: str, customer_id: str, action: Callable[[], Any]
) -> Any:
    """Run `action` in a thread with Stripe answering `path_prefix` after 2 s; while that call
    is in flight, another connection must get the customer row at once (FOR UPDATE NOWAIT).
    Returns what `action` returned."""
    stand_in.set_delay(2.0, path_prefix)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=action()))
    worker.start()
    try:
        while stand_in.delayed_started == 0:
            worker.join(0.02)
        engine = create_engine(TEST_DATABASE_URL)
        try:
            with engine.connect() as connection:
                locked = connection.execute(
                    text("SELECT 1 FROM customers WHERE customer_id = :id FOR UPDATE NOWAIT"),
                    {"id": customer_id},
                ).scalar()
                assert locked == 1
        except OperationalError as exc:  # pragma: no cover - the failure this guards
            pytest.fail(f"the customer row was locked during the Stripe call: {exc}")
        finally:
            engine.dispose()
    finally:
        worker.join(30)
        stand_in.set_delay(0)
    return outcome["result"]


def wait_until_waiting_on_a_lock(query_prefix: str, *, seconds: float = 20) -> None:
    """Return once a session of the test database runs a statement starting with `query_prefix`
    and waits on a lock (pg_stat_activity); fail after `seconds`."""
    engine = create_engine(TEST_DATABASE_URL)
    deadline = monotonic() + seconds
    try:
        with engine.connect() as connection:
            while not connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE :prefix"
                ),
                {"prefix": query_prefix + "%"},
            ).scalar():
                assert monotonic() < deadline, f"no session waited on a lock in {query_prefix}"
                connection.rollback()  # a fresh snapshot of pg_stat_activity
                sleep(0.05)
    finally:
        engine.dispose()
