"""The ingress's batcher: concurrent callers share one flush, and each gets its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.ingress.batcher import Coalescer, MicroBatcher


def test_concurrent_callers_share_a_flush_and_get_their_own_outcome() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | Exception]:
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

    async def flush(items: list[int]) -> list[int]:
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


def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    async def scenario() -> int:
        release = asyncio.Event()

        async def flush(items: list[int]) -> list[int]:
            await release.wait()
            return items

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
    seen: list[tuple[list[int], list[object]]] = []

    async def scenario() -> list[int]:
        answered = asyncio.Event()

        async def flush(items: list[int]) -> list[int]:
            return [i + 1 for i in items]

        async def after(items: list[int], outcomes: list[object]) -> None:
            # Runs once every caller of the group has its answer.
            await answered.wait()
            seen.append((items, list(outcomes)))
            raise RuntimeError("broker down")  # must not reach anyone

        batcher: MicroBatcher[int, int] = MicroBatcher(
            flush, after_flush=after, max_wait_seconds=0.001
        )
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        answered.set()
        # A later group still flushes after the failed after-step.
        results.append(await batcher.submit(3))
        return results

    assert asyncio.run(scenario()) == [2, 3, 4]
    assert seen[0] == ([1, 2], [2, 3])


def test_the_flush_slot_is_free_while_the_after_flush_step_runs() -> None:
    flushed: list[list[int]] = []

    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def flush(items: list[int]) -> list[int]:
            flushed.append(items)
            return items

        async def slow_after(items: list[int], outcomes: list[object]) -> None:
            await release.wait()  # a publish stuck on a slow broker

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
