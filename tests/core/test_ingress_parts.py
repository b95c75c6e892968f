"""The hot path's parts, each on its own: database steps (core/db_steps.py) over SQLAlchemy and
over asyncpg, the rate limiter's batched increments (core/rate_limit.py), and the ingress's held
asyncpg connections (core/ingress/connections.py). Real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.orm import Session

from core.db_steps import Query, Steps, insert_many, many_rows, run_steps, run_steps_on_asyncpg
from core.ingress.connections import HeldAsyncpgConnections
from core.rate_limit import RedisRateLimiter, current_limiter
from core.settings import get_settings
from tests.conftest import REDIS_URL, TEST_DATABASE_URL

metadata = MetaData()
NOTES = Table(
    "step_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
)
COLUMNS = ("name",)


def storing_notes(dialect: str, names: list[str]) -> Steps[tuple[list[str], int]]:
    """Inserts the names, skipping stored ones; returns those inserted and the count after."""
    statement = insert_many(NOTES, COLUMNS, ("name",), dialect, ("name",))
    rows = [{"name": name} for name in names]
    inserted = yield Query(statement, many_rows(dialect, rows, COLUMNS))
    counted = yield Query(select(NOTES.c.id))
    return sorted(row["name"] for row in inserted), len(counted)


@pytest.fixture
def notes_table() -> Iterator[str]:
    engine = create_engine(TEST_DATABASE_URL)
    metadata.create_all(engine)
    try:
        yield TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgresql://")
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_steps_run_alike_over_a_session_and_over_asyncpg(notes_table: str) -> None:
    engine = create_engine(TEST_DATABASE_URL)
    with Session(engine) as session:
        first = run_steps(session, storing_notes("postgresql", ["a", "b"]))
        session.commit()
    engine.dispose()

    async def over_asyncpg() -> tuple[list[str], int]:
        connection = await asyncpg.connect(notes_table)
        try:
            # "b" is stored already: skipped, not an error; "c" and "d" are new.
            return await run_steps_on_asyncpg(
                connection, storing_notes("postgresql", ["b", "c", "d"])
            )
        finally:
            await connection.close()

    assert first == (["a", "b"], 2)
    assert asyncio.run(over_asyncpg()) == (["c", "d"], 4)


def test_steps_run_on_sqlite_with_the_same_definition(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    metadata.create_all(engine)
    with Session(engine) as session:
        assert run_steps(session, storing_notes("sqlite", ["a", "b"])) == (["a", "b"], 2)
        assert run_steps(session, storing_notes("sqlite", ["b", "c"])) == (["c"], 3)
    engine.dispose()


def test_batched_increments_give_each_caller_its_own_count_and_share_one_store() -> None:
    limiter = RedisRateLimiter(REDIS_URL, f"test-{uuid.uuid4().hex}:")
    bucket = "batched"

    async def scenario() -> tuple[list[Any], Any, Any]:
        # Thirty hits from one event loop at once (sent to Redis together), limit 25.
        hits = await asyncio.gather(*(limiter.hit(bucket, 25, 3600) for _ in range(30)))
        other = await limiter.hit("other", 25, 3600)
        peek = await limiter.hit("other", 25, 3600, amount=0)
        return hits, other, peek

    hits, other, peek = asyncio.run(scenario())
    assert [decision.allowed for decision in hits] == [True] * 25 + [False] * 5
    assert all(decision.retry_after >= 1 for decision in hits[25:])
    # Another bucket is counted on its own; a peek counts nothing.
    assert other.allowed and peek.allowed
    # Every process shares the count: a fresh limiter (another process) sees the bucket over.
    fresh = RedisRateLimiter(REDIS_URL, limiter._prefix)
    assert not asyncio.run(fresh.hit(bucket, 25, 3600, amount=0)).allowed
    assert asyncio.run(fresh.hit("other", 1, 3600, amount=0)).allowed


def _held(dsn: str, *, most: int = 2) -> HeldAsyncpgConnections:
    return HeldAsyncpgConnections({"dsn": dsn, "timeout": 5}, most=most, wait_seconds=5)


async def _backend_pid(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT pg_backend_pid()"))


def test_a_held_connection_idle_too_long_is_retired_for_a_fresh_one(notes_table: str) -> None:
    async def scenario() -> tuple[int, int, int, bool]:
        held = _held(notes_table)
        async with held.connection() as connection:
            first = await _backend_pid(connection)
            kept = connection
        async with held.connection() as connection:
            again = await _backend_pid(connection)  # idle a moment: the same one
        held.IDLE_SECONDS = 0.0  # every idle connection is now too old
        async with held.connection() as connection:
            fresh = await _backend_pid(connection)
        retired = kept.is_closed()
        await held.aclose()
        return first, again, fresh, retired

    first, again, fresh, retired = asyncio.run(scenario())
    assert again == first
    assert fresh != first and retired


def test_a_connection_in_use_when_closing_starts_is_closed_when_its_group_ends(
    notes_table: str,
) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        held = _held(notes_table)
        async with held.connection() as in_use:
            async with held.connection() as idle_one:
                assert idle_one is not in_use
            closing = asyncio.ensure_future(held.aclose())
            await asyncio.sleep(0)
            # The group still finishes its work on it.
            assert await in_use.fetchval("SELECT 1") == 1
        await closing
        return idle_one.is_closed(), in_use.is_closed(), bool(held._idle)

    idle_closed, in_use_closed, any_idle = asyncio.run(scenario())
    assert idle_closed and in_use_closed and not any_idle


def test_one_call_counts_buckets_of_different_limits_each_against_its_own() -> None:
    """A group's per-instance and per-license limits go to Redis in one script call, each
    bucket judged by its own limit."""
    limiter = RedisRateLimiter(REDIS_URL, f"test-{uuid.uuid4().hex}:")
    calls: list[int] = []

    async def scenario() -> list[list[bool]]:
        counter = limiter._counter()
        script = counter._script

        async def counted(**kwargs: Any) -> Any:
            calls.append(len(kwargs["keys"]))
            return await script(**kwargs)

        counter._script = counted  # type: ignore[assignment]
        rounds = []
        for _ in range(3):
            # Two reports of one instance and their license: limits 2 (instance), 5 (license).
            decisions = await limiter.hit_many(
                ["instance", "instance", "license", "license"], [2, 2, 5, 5], 3600
            )
            rounds.append([decision.allowed for decision in decisions])
        return rounds

    rounds = asyncio.run(scenario())
    assert rounds[0] == [True, True, True, True]
    # The instance is over its 2 from the third report on; the license only past its 5th.
    assert rounds[1] == [False, False, True, True]
    assert rounds[2] == [False, False, True, False]
    # Two keys a call; the last round's instance was refused from memory (no key sent for it).
    assert calls == [2, 2, 1]


def test_the_current_limiter_follows_the_settings_it_was_made_for() -> None:
    """Resolved once per settings object: new settings (another prefix) get their own."""
    first = current_limiter()
    assert current_limiter() is first
    prefix = f"other-{uuid.uuid4().hex}:"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERY_KEY_PREFIX", prefix)
        get_settings.cache_clear()
        other = current_limiter()
    get_settings.cache_clear()
    assert isinstance(other, RedisRateLimiter) and other._prefix == prefix
    assert current_limiter() is first
