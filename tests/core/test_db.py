"""core.db.advisory_lock with `wait_seconds` (a customer's concurrent checkouts): the second
session waits past the database lock timeout for the key, gets it once the first commits, and the
rest of its transaction waits on row locks only as long as the database lock timeout."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from time import sleep

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.customers.service import create_customer
from core.db import _create_engine, advisory_lock, session_scope
from core.settings import get_settings
from tests.conftest import TEST_DATABASE_URL
from tests.helpers.locks import wait_until_waiting_on_a_lock

LOCK_TIMEOUT_MS = 500  # the database lock timeout here: short, so waiting past it is quick


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose connections have the database lock timeout of LOCK_TIMEOUT_MS, as the
    application's have DATABASE_LOCK_TIMEOUT_MS."""
    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_MS", str(LOCK_TIMEOUT_MS))
    get_settings.cache_clear()
    engine = _create_engine(TEST_DATABASE_URL, get_settings())
    try:
        yield engine
    finally:
        engine.dispose()
        monkeypatch.undo()
        get_settings.cache_clear()


def test_a_second_session_waits_past_the_lock_timeout_then_row_locks_time_out_as_usual(
    engine: Engine,
) -> None:
    with session_scope() as session:
        customer_id = create_customer(session, email="advisory@example.com").customer_id
    waited_out = 3 * LOCK_TIMEOUT_MS / 1000

    def second_checkout(session: Session) -> None:
        advisory_lock(session, "checkout:test", wait_seconds=10)

    with (
        Session(engine) as first,
        Session(engine) as second,
        Session(engine) as row_holder,
        ThreadPoolExecutor(1) as pool,
    ):
        advisory_lock(first, "checkout:test", wait_seconds=10)
        waiting = pool.submit(second_checkout, second)
        wait_until_waiting_on_a_lock("SELECT pg_advisory_xact_lock")
        sleep(waited_out)  # well past the lock timeout, which would have failed it by now
        assert not waiting.done()
        first.commit()
        waiting.result(10)  # the key, once the first session's transaction ended

        # The rest of the second session's transaction: the database lock timeout again.
        assert second.execute(text("SHOW lock_timeout")).scalar() == f"{LOCK_TIMEOUT_MS}ms"
        lock_row = text("SELECT 1 FROM customers WHERE customer_id = :id FOR UPDATE")
        row_holder.execute(lock_row, {"id": customer_id})
        with pytest.raises(OperationalError) as refused:
            second.execute(lock_row, {"id": customer_id})
        assert refused.value.orig.pgcode == "55P03"  # lock_timeout: answered 503, retried
