"""MicroBatcher: concurrent callers share one flush, and each gets its own outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.batching import Coalescer, MicroBatcher


def test_concurrent_callers_share_a_flush_and_get_their_own_outcome() -> None:
    flushed: list[list[int]] = []

    def flush(items: list[int]) -> list[int | Exception]:
        flushed.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def scenario() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_wait_seconds=0.01)
        return await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert flushed == [[0, 1, 2, 3, 4, 5]]
    assert results[0::2] == [0, 20, 40]
    assert [str(error) for error in results[1::2]] == ["odd 1", "odd 3", "odd 5"]


def test_a_full_batch_flushes_without_waiting_and_a_failing_flush_reaches_every_caller() -> None:
    sizes: list[int] = []
    thread_names: set[str] = set()

    def flush(items: list[int]) -> list[int]:
        thread_names.add(threading.current_thread().name)
        sizes.append(len(items))
        if 99 in items:
            raise ConnectionError("database down")
        return items

    async def scenario() -> tuple[list[int], list[object]]:
        # A 60 s wait would time the test out: only max_items can trigger these flushes.
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_items=3, max_wait_seconds=60)
        ok = await asyncio.gather(*(batcher.submit(i) for i in range(6)))
        failed = await asyncio.gather(
            *(batcher.submit(i) for i in (97, 98, 99)), return_exceptions=True
        )
        return ok, failed

    ok, failed = asyncio.run(scenario())
    assert ok == [0, 1, 2, 3, 4, 5]
    assert sizes == [3, 3, 3]
    assert all(isinstance(error, ConnectionError) for error in failed)
    # The flush runs off the event loop, so the server keeps accepting requests meanwhile.
    assert threading.main_thread().name not in thread_names


def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    release = threading.Event()

    def flush(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def scenario() -> int:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_wait_seconds=0.001)
        leaving = asyncio.ensure_future(batcher.submit(1))
        staying = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.05)
        leaving.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    assert asyncio.run(scenario()) == 2


def test_callers_are_answered_before_the_after_flush_step_runs() -> None:
    answered = threading.Event()
    seen: list[tuple[list[int], list[object]]] = []

    def after(items: list[int], outcomes: list[object]) -> None:
        # Runs once every caller of the group has its answer.
        assert answered.wait(5)
        seen.append((items, list(outcomes)))
        raise RuntimeError("broker down")  # must not reach anyone

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            lambda items: [i + 1 for i in items], after_flush=after, max_wait_seconds=0.001
        )
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        answered.set()
        # A later group still flushes after the failed after-step.
        results.append(await batcher.submit(3))
        return results

    assert asyncio.run(scenario()) == [2, 3, 4]
    assert seen[0] == ([1, 2], [2, 3])


def test_the_flush_slot_is_free_while_the_after_flush_step_runs() -> None:
    release = threading.Event()
    flushed: list[list[int]] = []

    def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return items

    def slow_after(items: list[int], outcomes: list[object]) -> None:
        release.wait(5)  # a publish stuck on a slow broker

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            flush, after_flush=slow_after, max_wait_seconds=0.001, max_concurrent_flushes=1
        )
        first = await batcher.submit(1)
        # With the only slot held by the stuck publish, this would wait for it.
        second = await asyncio.wait_for(batcher.submit(2), timeout=2)
        release.set()
        return [first, second]

    assert asyncio.run(scenario()) == [1, 2]
    assert flushed == [[1], [2]]


def test_the_coalescer_publishes_many_callers_elements_in_few_calls() -> None:
    published: list[list[int]] = []
    publishing = threading.Event()
    release = threading.Event()

    def publish(elements: list[int]) -> None:
        published.append(elements)
        if len(published) == 2:
            raise ConnectionError("broker down")  # logged; later rounds still publish
        publishing.set()
        release.wait(5)

    async def scenario() -> None:
        coalescer: Coalescer[int] = Coalescer(publish, gather_seconds=0.01, max_chunk=4)
        for n in range(3):
            coalescer.add([n])
        await asyncio.to_thread(publishing.wait, 5)
        # While the first round publishes, what is added waits for the next one.
        coalescer.add([3, 4])
        coalescer.add([5, 6, 7, 8, 9])
        release.set()
        for _ in range(200):
            if sum(len(chunk) for chunk in published) == 10:
                break
            await asyncio.sleep(0.01)
        coalescer.add([10])
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    # Round one: the three early adds in one call; round two: seven elements in chunks of at
    # most four (the first chunk's publish failed and the second still went); round three.
    assert published == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9], [10]]


def test_closing_publishes_what_was_gathered_at_once() -> None:
    published: list[list[int]] = []

    async def scenario() -> None:
        # A gathering window longer than the test: only the close can publish.
        coalescer: Coalescer[int] = Coalescer(published.append, gather_seconds=60)
        coalescer.add([1, 2])
        await asyncio.sleep(0.01)
        await asyncio.wait_for(coalescer.aclose(), timeout=5)

    asyncio.run(scenario())
    assert published == [[1, 2]]


def test_group_transactions_commit_a_group_and_roll_back_a_failed_one_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The embedded development database (no asyncpg there): the group runs in a worker thread.
    from core.batching import GroupTransactions
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
    from core.batching import GroupTransactions
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
