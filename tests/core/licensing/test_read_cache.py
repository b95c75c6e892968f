"""core.licensing.read_cache: trusted only while the change counter is read, dropped when it moves
or cannot be read, never served past its age limit; every license change, made by any process
with or without Redis, moves the counter in the change's own transaction."""

from __future__ import annotations

import asyncio
import os
import subprocess

import psycopg2
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from core.customers.service import create_customer
from core.db import get_engine, session_scope
from core.licensing import read_cache
from core.licensing.read_cache import (
    LicenseReadCache,
    license_read_cache,
    mark_changed,
    read_change_version,
)
from models import LicenseChange
from tests.helpers.locks import wait_until_waiting_on_a_lock
from tests.helpers.processes import PROJECT_ROOT, billing_command


class SwitchableDatabase:
    """The change counter read from the test database, or from a server that refuses
    connections (a real failure of the poll's read, as when the database is unreachable)."""

    def __init__(self) -> None:
        self.reachable = True
        self._unreachable = create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")

    def read_version(self) -> int:
        if self.reachable:
            return read_change_version()
        with self._unreachable.connect() as connection:
            return int(connection.execute(select(LicenseChange.version)).scalar() or 0)


def test_served_while_the_counter_is_read_and_dropped_when_it_moves() -> None:
    async def scenario() -> None:
        # A cache of another process: this process's commits reach it only through the counter.
        cache = LicenseReadCache(read_change_version)
        assert await cache.poll()
        cache.put("a", "answer", cache.generation())
        assert cache.get("a") == "answer"
        with session_scope() as session:
            mark_changed(session)  # a license change committed anywhere
        assert await cache.poll()
        assert cache.peek("a") is None
        cache.put("a", "stale", cache.generation() - 1)  # read before the change: refused
        assert cache.peek("a") is None

    asyncio.run(scenario())


def test_a_failed_poll_drops_everything_so_a_poll_on_the_same_version_trusts_nothing_old() -> None:
    """The state that served a revoked license for minutes: a change this process did not hear
    of (its signal lost, or made behind the service's back), an entry cached before it, a poll
    that failed, then polls that succeed on the same version. The entry must not come back."""

    async def scenario() -> None:
        database = SwitchableDatabase()
        cache = LicenseReadCache(database.read_version)
        assert await cache.poll()
        cache.put("license", "not revoked", cache.generation())
        assert cache.peek("license") == "not revoked"
        database.reachable = False
        assert not await cache.poll()
        assert cache.peek("license") is None
        database.reachable = True
        assert await cache.poll()  # the same version as before the failure
        assert cache.peek("license") is None
        # What is read afresh is cached again.
        cache.put("license", "revoked", cache.generation())
        assert cache.peek("license") == "revoked"

    asyncio.run(scenario())


def test_no_entry_outlives_the_age_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        cache = LicenseReadCache(read_change_version)
        assert await cache.poll()
        cache.put("no limit asked", "answer", cache.generation())
        cache.put("a longer one asked", "answer", cache.generation(), max_age=3600)
        await asyncio.sleep(0.1)
        assert await cache.poll()
        assert cache.peek("no limit asked") is None
        assert cache.peek("a longer one asked") is None

    monkeypatch.setattr(read_cache, "MAX_AGE_SECONDS", 0.05)
    asyncio.run(scenario())


def test_a_commit_that_changes_licenses_counts_and_drops_this_process_entries() -> None:
    cache = license_read_cache()
    cache.put("b", "answer", cache.generation())
    before, version = cache.generation(), read_change_version()
    with session_scope() as session:
        pass  # a commit that changes no license keeps the entries and the counter
    assert (cache.generation(), read_change_version()) == (before, version)
    with session_scope() as session:
        session.execute(select(LicenseChange.version))  # a transaction under way
        mark_changed(session)
        session.rollback()  # rolled back: nothing changed, nothing counted
    assert read_change_version() == version
    with session_scope() as session:
        mark_changed(session)
    assert cache.generation() == before + 1
    assert read_change_version() == version + 1


def test_a_revocation_by_the_cli_without_any_redis_moves_the_counter() -> None:
    with session_scope() as session:
        customer_id = create_customer(session, email="cli@example.com", name="CLI").customer_id
    version = read_change_version()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RATE_LIMIT_REDIS_URL"):
        env.pop(name, None)
    revoked = subprocess.run(
        billing_command("license", "revoke", customer_id, "--reason", "chargeback"),
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert revoked.returncode == 0, revoked.stderr.decode()
    assert read_change_version() > version


def test_the_counter_is_read_while_every_request_connection_is_taken() -> None:
    """The poll has a connection of its own: a request pool drained by a saturated database
    does not delay it until license trust lapses."""
    from contextlib import ExitStack

    from core.db import get_engine
    from core.settings import get_settings

    with session_scope() as session:
        mark_changed(session)
    expected = read_change_version()
    engine = get_engine()
    with ExitStack() as held:
        for _ in range(engine.pool.size() + get_settings().database_max_overflow):
            held.enter_context(engine.connect())
        assert read_change_version() == expected


def test_a_rollback_keeps_the_entries_but_a_failed_commit_drops_them(monkeypatch) -> None:
    """A rollback changed nothing: the entries stay. A COMMIT that failed after the counter was
    bumped may have landed (the connection lost while PostgreSQL answered it): this process must
    not keep serving what the change replaced."""
    cache = license_read_cache()
    cache.put("c", "answer", cache.generation())
    before = cache.generation()
    with session_scope() as session:
        session.execute(select(LicenseChange.version))
        mark_changed(session)
        session.rollback()
    assert cache.generation() == before
    version = read_change_version()
    engine = get_engine()
    real_commit = engine.dialect.do_commit

    def commit_then_lose_the_answer(dbapi_connection) -> None:
        real_commit(dbapi_connection)  # PostgreSQL committed; the client never hears it
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(engine.dialect, "do_commit", commit_then_lose_the_answer)
    with pytest.raises(OperationalError), session_scope() as session:
        session.execute(select(LicenseChange.version))
        mark_changed(session)
    monkeypatch.undo()
    assert read_change_version() == version + 1  # the change landed
    assert cache.generation() > before
    assert cache.peek("c") is None


def test_the_counter_is_locked_only_after_the_changes_are_written() -> None:
    """A license change whose last writes wait on another row lock (a customer row held while
    Stripe is called) must not hold the counter's row meanwhile: every other license change of
    every process would queue behind it."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    from sqlalchemy import text

    from models import Customer

    with session_scope() as session:
        customer_id = create_customer(session, email="held-row@example.com").customer_id
    locked, release = Event(), Event()

    def hold_the_customer_row() -> None:
        with session_scope() as session:
            session.execute(
                text("SELECT 1 FROM customers WHERE customer_id = :id FOR UPDATE"),
                {"id": customer_id},
            )
            locked.set()
            release.wait(30)

    def change_the_held_customer() -> None:
        with session_scope() as session:
            customer = session.scalars(
                select(Customer).where(Customer.customer_id == customer_id)
            ).one()
            customer.name = "Renamed"  # written by the commit's flush, which waits on the lock
            mark_changed(session)

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(hold_the_customer_row)
        try:
            assert locked.wait(10)
            waiting = pool.submit(change_the_held_customer)
            wait_until_waiting_on_a_lock("UPDATE customers")
            # Another license change, of another customer, while the customer row is still held:
            # it must not queue behind the waiting change (a lock wait here fails in 3 s).
            with session_scope() as session:
                session.execute(text("SET LOCAL lock_timeout = '3s'"))
                mark_changed(session)
            assert not waiting.done()  # the customer row was held throughout
        finally:
            release.set()
        holder.result(10)
        waiting.result(10)
