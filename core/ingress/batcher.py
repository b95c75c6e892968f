"""The batcher: the concurrent requests of one process grouped into one database write.

On the ingress, one request's work is a handful of short round trips (license lookup, INSERT,
COMMIT, a task publish) during which the process mostly waits. Requests that arrive together are
handed to one `flush` call instead: one lookup and one committed multi-row INSERT for the whole
group. Each caller still waits for its own outcome, so an answer still means "stored" and a
failure reaches exactly the callers it concerns.

What follows the answers (publishing the group's task) runs after the flush slot is free, so it
never delays the next group's commit; `Coalescer` then gathers what many groups publish into one
task at a time, so the workers get few large tasks instead of one small task per group.

The batchers and coalescers are made when a server process starts (`Ingress.start`), never at
import: they read the settings, and `flush` / `publish` are callables handed in, so this module
knows nothing of the API, the tasks or the broker. A group's database transaction is
core/ingress/transactions.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

from anyio import to_thread

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# Per item: its outcome, or the exception to raise to its caller (a coroutine function, run on
# the event loop).
Flush = Callable[[list[Item]], Awaitable[Sequence[Outcome | Exception]]]
# Work on a flushed group that its callers need not wait for (handing its ids to the publisher;
# keep it short).
AfterFlush = Callable[[list[Item], Sequence[Outcome | Exception]], Awaitable[None]]


class MicroBatcher(Generic[Item, Outcome]):
    def __init__(
        self,
        flush: Flush[Item, Outcome],
        *,
        after_flush: AfterFlush[Item, Outcome] | None = None,
        max_items: int = 200,
        max_wait_seconds: float = 0.002,
        max_concurrent_flushes: int = 4,
    ) -> None:
        self._flush = flush
        self._after_flush = after_flush
        self._max_items = max_items
        self._max_wait = max_wait_seconds
        self._max_concurrent = max_concurrent_flushes
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls, flush: Flush[Item, Outcome], after_flush: AfterFlush[Item, Outcome] | None = None
    ) -> MicroBatcher[Item, Outcome]:
        from core.settings import get_settings

        settings = get_settings()
        return cls(
            flush,
            after_flush=after_flush,
            max_items=settings.ingress_batch_max_items,
            max_wait_seconds=settings.ingress_batch_max_wait_ms / 1000,
        )

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Loop-bound state (futures, timer, semaphore) is made anew when the loop changes, as it
        # does between test clients; a server process keeps one loop.
        self._loop = loop
        self._pending: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing = 0
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Outcome:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_items:
            self._start_flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._start_flush)
        # A caller that goes away cancels only its own future (the flush is a task of its own,
        # and skips outcomes nobody waits for): the others' flush goes on.
        return await future

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # While every flush slot is busy, requests keep gathering: the next group is as large as
        # the load makes it (group commit), started as soon as a flush finishes.
        if not self._pending or self._flushing >= self._max_concurrent:
            return
        batch = self._pending[: self._max_items]
        del self._pending[: self._max_items]
        self._flushing += 1
        task = asyncio.ensure_future(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        items = [item for item, _ in batch]
        try:
            outcomes = await self._flush(items)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            self._finish()
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        # The callers have their answers; the slot is free for the next group before what
        # follows (publishing) runs.
        self._finish()
        if self._after_flush is None:
            return
        try:
            await self._after_flush(items, outcomes)
        except Exception:  # noqa: BLE001 - the callers are answered; nothing to hand it to
            log.exception("after-flush step failed")

    async def aclose(self) -> None:
        """At shutdown: wait for the groups being flushed and their after-flush steps."""
        if self._loop is asyncio.get_running_loop() and self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _finish(self) -> None:
        self._flushing -= 1
        if self._pending:
            self._start_flush()


Element = TypeVar("Element")


class Coalescer(Generic[Element]):
    """Gathers elements added by many callers and hands them to `publish`, one call at a time.

    `add` is called on the event loop and never waits. The first element starts a round: after
    `gather_seconds` (so that the groups committed meanwhile join; a publish costs about a
    millisecond of CPU, so the default makes at most ten a second) everything gathered is
    published in a worker thread, in chunks of at most `max_chunk`; elements added while a
    publish runs go into the next round. A failed publish is logged, not retried: the elements
    were committed before they got here, and the inbox sweeper picks up whatever was not.
    """

    def __init__(
        self,
        publish: Callable[[list[Element]], None],
        *,
        gather_seconds: float = 0.1,
        max_chunk: int = 500,
    ) -> None:
        self._publish = publish
        self._gather = gather_seconds
        self._max_chunk = max_chunk
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, elements: Iterable[Element]) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # As in MicroBatcher: a test client's new loop gets new loop-bound state.
            self._loop = loop
            self._pending: list[Element] = []
            self._round: asyncio.Task[None] | None = None
            self._closing = asyncio.Event()
        self._pending.extend(elements)
        if self._pending and self._round is None:
            self._round = loop.create_task(self._rounds())

    async def aclose(self) -> None:
        """At shutdown: publish what was gathered now rather than leave it to the sweeper."""
        if self._loop is not asyncio.get_running_loop():
            return
        self._closing.set()
        while self._round is not None:
            await asyncio.gather(self._round, return_exceptions=True)

    async def _rounds(self) -> None:
        try:
            while self._pending:
                if not self._closing.is_set():
                    # Gather for a moment, unless the process is shutting down.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self._gather)
                gathered, self._pending = self._pending, []
                for first in range(0, len(gathered), self._max_chunk):
                    chunk = gathered[first : first + self._max_chunk]
                    try:
                        await to_thread.run_sync(self._publish, chunk)
                    except Exception:  # noqa: BLE001 - committed already; the sweeper has it
                        log.exception("publishing %d element(s) failed", len(chunk))
        finally:
            self._round = None
