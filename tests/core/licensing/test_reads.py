"""core.licensing.lookup.single_flight: concurrent misses of one key share one database read."""

from __future__ import annotations

import asyncio
import threading
import time

from core.licensing.lookup import single_flight as _once


def test_concurrent_misses_share_one_read_and_a_cancelled_reader_is_replaced() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def slow_read(value: int) -> int:
        with lock:
            calls.append(value)
        time.sleep(0.2)
        return value * 10

    async def scenario() -> None:
        results = await asyncio.gather(*(_once("k", slow_read, 1) for _ in range(20)))
        assert results == [10] * 20 and calls == [1]

        # The request doing the read goes away: one waiting on it reads instead of failing.
        owner = asyncio.create_task(_once("k2", slow_read, 2))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(_once("k2", slow_read, 2))
        await asyncio.sleep(0.01)
        owner.cancel()
        assert await waiter == 20
        assert owner.cancelled()

    asyncio.run(scenario())
