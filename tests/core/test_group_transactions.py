"""GroupTransactions: a batcher's group in one committed transaction, on SQLite and on
PostgreSQL over asyncpg (the API's tests run every ingress request through it as well)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.db_steps import Query, Steps
from core.ingress.batcher import MicroBatcher
from core.ingress.connections import DatabaseUnavailableError
from core.ingress.transactions import GroupTransactions

INSERT_SEEN = text("INSERT INTO seen VALUES (:n)")


def storing(dialect: str, group: list[int]) -> Steps[list[int]]:
    """Inserts each number into `seen`; a group holding 13 fails after its inserts."""
    for n in group:
        yield Query(INSERT_SEEN, {"n": n})
    if 13 in group:
        raise ValueError("unlucky group")
    return [n * 2 for n in group]


async def commit_then_fail(
    transactions: GroupTransactions[int, int],
) -> tuple[list[object], list[object], MicroBatcher[int, int]]:
    """A group that commits (1, 2, 3), then one that fails (12, 13)."""
    batcher: MicroBatcher[int, int] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
    ok = await asyncio.gather(*(batcher.submit(n) for n in (1, 2, 3)))
    failed = await asyncio.gather(*(batcher.submit(n) for n in (12, 13)), return_exceptions=True)
    return list(ok), failed, batcher


@dataclass
class SeenTable:
    """The `seen` table on the test PostgreSQL, and an autocommitting connection to read it."""

    dsn: str
    admin: Any

    def numbers(self) -> list[int]:
        with self.admin.cursor() as cursor:
            cursor.execute("SELECT n FROM seen ORDER BY n")
            return [n for (n,) in cursor.fetchall()]


@pytest.fixture
def seen_on_postgresql() -> Iterator[SeenTable]:
    import psycopg2

    from tests.conftest import TEST_DATABASE_URL

    dsn = TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgresql://")
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS seen; CREATE TABLE seen (n INTEGER)")
    try:
        yield SeenTable(dsn, admin)
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP TABLE seen")
        admin.close()


def test_group_transactions_commit_a_group_and_roll_back_a_failed_one_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The embedded development database (no asyncpg there): the group runs in a worker thread.
    from core.settings import get_settings

    path = tmp_path / "ingress.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE seen (n INTEGER)")
    monkeypatch.setattr(get_settings(), "database_url", f"sqlite:///{path}")

    transactions: GroupTransactions[int, int] = GroupTransactions(storing)

    async def scenario() -> tuple[list[object], list[object]]:
        ok, failed, _ = await commit_then_fail(transactions)
        await transactions.aclose()
        return ok, failed

    ok, failed = asyncio.run(scenario())
    assert ok == [2, 4, 6]
    assert all(isinstance(error, ValueError) for error in failed)
    with sqlite3.connect(path) as check:
        assert sorted(n for (n,) in check.execute("SELECT n FROM seen")) == [1, 2, 3]


def test_group_transactions_take_a_libpq_database_url_with_sslmode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DATABASE_URL is written for psycopg2; the ingress's asyncpg engine must accept it too.
    from core.settings import get_settings
    from tests.conftest import TEST_DATABASE_URL

    monkeypatch.setattr(get_settings(), "database_url", f"{TEST_DATABASE_URL}?sslmode=disable")

    def server_settings(dialect: str, group: list[str]) -> Steps[list[str]]:
        shown = []
        for name in group:
            rows = yield Query(text(f"SHOW {name}"))
            shown.append(str(rows[0][name]))
        return shown

    transactions: GroupTransactions[str, str] = GroupTransactions(server_settings)

    async def scenario() -> list[str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
        try:
            return list(await asyncio.gather(*(batcher.submit(n) for n in ("ssl", "lock_timeout"))))
        finally:
            await transactions.aclose()

    # Over asyncpg, without TLS, with the DATABASE_LOCK_TIMEOUT_MS of every connection.
    assert asyncio.run(scenario()) == ["off", "5s"]


def test_a_group_on_postgresql_commits_or_rolls_back_whole_and_a_lock_timeout_is_a_503(
    monkeypatch: pytest.MonkeyPatch, seen_on_postgresql: SeenTable
) -> None:
    """Over asyncpg: a group is one transaction; a lock not granted within
    DATABASE_LOCK_TIMEOUT_MS is "unavailable, retry" (503), not a bug (500)."""
    import psycopg2

    from core.settings import get_settings

    monkeypatch.setattr(get_settings(), "database_lock_timeout_ms", 200)
    transactions: GroupTransactions[int, int] = GroupTransactions(storing)

    async def scenario() -> tuple[list[object], list[object]]:
        ok, failed, batcher = await commit_then_fail(transactions)
        locker = psycopg2.connect(seen_on_postgresql.dsn)
        try:
            with locker.cursor() as cursor:
                cursor.execute("LOCK TABLE seen IN ACCESS EXCLUSIVE MODE")
                locked = await asyncio.gather(batcher.submit(7), return_exceptions=True)
        finally:
            locker.rollback()
            locker.close()
        await transactions.aclose()
        return ok, [*failed, *locked]

    ok, failed = asyncio.run(scenario())
    assert ok == [2, 4, 6]
    assert [type(error) for error in failed] == [ValueError, ValueError, DatabaseUnavailableError]
    assert seen_on_postgresql.numbers() == [1, 2, 3]


def test_a_statement_timeout_is_a_503_at_once_not_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a dropped connection reruns a group: a statement the server cancelled after
    DATABASE_STATEMENT_TIMEOUT_MS would only wait out the timeout a second time."""
    from core.settings import get_settings

    monkeypatch.setattr(get_settings(), "database_statement_timeout_ms", 200)
    runs: list[list[int]] = []

    def slow(dialect: str, group: list[int]) -> Steps[list[int]]:
        runs.append(group)
        yield Query(text("SELECT pg_sleep(2)"))
        return group

    transactions: GroupTransactions[int, int] = GroupTransactions(slow, one_write=True)

    async def scenario() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
        try:
            return await asyncio.gather(batcher.submit(1), return_exceptions=True)
        finally:
            await transactions.aclose()

    [outcome] = asyncio.run(scenario())
    assert isinstance(outcome, DatabaseUnavailableError)
    assert runs == [[1]]


def test_a_connection_the_server_ended_while_it_sat_idle_is_replaced_and_the_group_stored(
    seen_on_postgresql: SeenTable,
) -> None:
    """A database restart reaches an idle pooled connection as the server's "terminating
    connection" message, and only then as its socket closing. A group that takes the connection
    in between is refused by asyncpg (InternalClientError); it runs again on a fresh one."""
    admin = seen_on_postgresql.admin
    runs: list[list[int]] = []

    def counted(dialect: str, group: list[int]) -> Steps[list[int]]:
        runs.append(group)
        return storing(dialect, group)

    transactions: GroupTransactions[int, int] = GroupTransactions(counted, one_write=True)

    def end_backend_and_deliver_only_its_last_message(connection: object) -> None:
        transport = connection._transport  # type: ignore[attr-defined]
        transport.pause_reading()  # the socket's end stays unread, as in the race
        pid = connection.get_server_pid()  # type: ignore[attr-defined]
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(100):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
        farewell = os.read(transport.get_extra_info("socket").fileno(), 65536)
        assert b"terminating connection" in farewell
        connection._protocol.data_received(farewell)  # type: ignore[attr-defined]
        # As in the race: asyncpg has not seen the socket close, so the connection looks usable.
        assert not connection.is_closed()  # type: ignore[attr-defined]

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
        try:
            stored = [await batcher.submit(1)]
            [(connection, _)] = transactions._connections._idle  # type: ignore[union-attr]
            end_backend_and_deliver_only_its_last_message(connection)
            stored.append(await batcher.submit(2))
            stored.append(await batcher.submit(3))
            return stored
        finally:
            await transactions.aclose()

    assert asyncio.run(scenario()) == [2, 4, 6]
    assert seen_on_postgresql.numbers() == [1, 2, 3]
    assert runs == [[1], [2], [2], [3]]  # the group that met the ended connection ran again
