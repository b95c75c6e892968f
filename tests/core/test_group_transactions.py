"""GroupTransactions: a batcher's group in one committed transaction, on SQLite and on
PostgreSQL over asyncpg (the API's tests run every ingress request through it as well)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.batching import MicroBatcher
from core.group_transactions import GroupTransactions


def test_group_transactions_commit_a_group_and_roll_back_a_failed_one_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The embedded development database (no asyncpg there): the group runs in a worker thread.
    from core.settings import get_settings

    path = tmp_path / "ingress.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE seen (n INTEGER)")
    monkeypatch.setattr(get_settings(), "database_url", f"sqlite:///{path}")

    def store(session: Session, group: list[int]) -> list[int]:
        for n in group:
            session.execute(text("INSERT INTO seen VALUES (:n)"), {"n": n})
        if 13 in group:
            raise ValueError("unlucky group")
        return [n * 2 for n in group]

    transactions: GroupTransactions[int, int] = GroupTransactions(store)

    async def scenario() -> tuple[list[object], list[object]]:
        batcher: MicroBatcher[int, int] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
        ok = await asyncio.gather(*(batcher.submit(n) for n in (1, 2, 3)))
        failed = await asyncio.gather(
            *(batcher.submit(n) for n in (12, 13)), return_exceptions=True
        )
        await transactions.aclose()
        return list(ok), failed

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

    def server_settings(session: Session, group: list[str]) -> list[str]:
        return [str(session.scalar(text(f"SHOW {name}"))) for name in group]

    transactions: GroupTransactions[str, str] = GroupTransactions(server_settings)

    async def scenario() -> list[str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(transactions.flush, max_wait_seconds=0.01)
        try:
            return list(await asyncio.gather(*(batcher.submit(n) for n in ("ssl", "lock_timeout"))))
        finally:
            await transactions.aclose()

    # Over asyncpg, without TLS, with the DATABASE_LOCK_TIMEOUT_MS of every connection.
    assert asyncio.run(scenario()) == ["off", "5s"]
