"""core.licensing.lookup.single_flight: concurrent misses of one key share one database read."""

from __future__ import annotations

import asyncio
import threading
import time

from core.licensing.lookup import single_flight


def test_concurrent_misses_share_one_read_and_a_cancelled_reader_is_replaced() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def slow_read(value: int) -> int:
        with lock:
            calls.append(value)
        time.sleep(0.2)
        return value * 10

    async def scenario() -> None:
        results = await asyncio.gather(*(single_flight("k", slow_read, 1) for _ in range(20)))
        assert results == [10] * 20 and calls == [1]

        # The request doing the read goes away: one waiting on it reads instead of failing.
        owner = asyncio.create_task(single_flight("k2", slow_read, 2))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(single_flight("k2", slow_read, 2))
        await asyncio.sleep(0.01)
        owner.cancel()
        assert await waiter == 20
        assert owner.cancelled()

    asyncio.run(scenario())


def test_a_miss_after_an_invalidation_does_not_join_a_read_that_started_before_it() -> None:
    from core.licensing.read_cache import license_read_cache

    before_the_change = threading.Event()

    def read_before_the_change() -> str:
        before_the_change.wait(10)
        return "active"

    def read_after_the_change() -> str:
        return "revoked"

    async def scenario() -> None:
        early = asyncio.create_task(single_flight("license:x", read_before_the_change))
        await asyncio.sleep(0.01)  # its read is under way
        license_read_cache().invalidate()  # a revocation lands meanwhile
        late = asyncio.create_task(single_flight("license:x", read_after_the_change))
        await asyncio.sleep(0.01)
        before_the_change.set()
        assert await late == "revoked"
        assert await early == "active"

    asyncio.run(scenario())
