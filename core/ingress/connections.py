"""The ingress's own database connections: a few asyncpg connections held from one group
transaction to the next (core/ingress/transactions.py), on the event loop that opened them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from core.errors import ServiceUnavailableError


class DatabaseUnavailableError(ServiceUnavailableError):
    # Clients retry after this many seconds (the API's Retry-After).
    headers = {"Retry-After": "5"}


class HeldAsyncpgConnections:
    """The asyncpg connections of one GroupTransactions, on the event loop that opened them.

    In place of asyncpg's pool, whose acquire with a timeout (a task and a timer) and release
    cost as much CPU as one of the group's statements: a group takes an idle connection or opens
    one, at most `most` at once, and gives it back when its work succeeded. A connection whose
    group failed is closed instead (it may be broken, or mid-transaction); the next group opens
    a fresh one.
    """

    # As asyncpg's pool does: a connection idle this long is closed rather than used (a firewall
    # or load balancer may have dropped it silently).
    IDLE_SECONDS = 300.0

    def __init__(self, connect_args: dict[str, Any], *, most: int, wait_seconds: float) -> None:
        self._connect_args = connect_args
        self._wait_seconds = wait_seconds
        # (connection, when it went idle), the most recent last.
        self._idle: list[tuple[asyncpg.Connection, float]] = []
        self._slots = asyncio.Semaphore(most)
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._slots.locked():
            # Every connection busy: wait DATABASE_POOL_TIMEOUT_SECONDS at most (then 503).
            await asyncio.wait_for(self._slots.acquire(), self._wait_seconds)
        else:
            await self._slots.acquire()
        try:
            connection = self._take_idle() or await self._open()
            try:
                yield connection
            except BaseException:
                connection.terminate()
                raise
            if self._closed:
                connection.terminate()
            elif not connection.is_closed():
                self._idle.append((connection, time.monotonic()))
        finally:
            self._slots.release()

    def _take_idle(self) -> asyncpg.Connection | None:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if now - since >= self.IDLE_SECONDS:
                connection.terminate()
            elif not connection.is_closed():  # not one the server closed while it sat idle
                return connection
        return None

    async def _open(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(**self._connect_args)
        try:
            await _set_codecs(connection)
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def aclose(self) -> None:
        # Connections still out go when their group ends (`_closed`).
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)


async def _set_codecs(connection: asyncpg.Connection) -> None:
    # JSON columns (the Stripe event payloads) go in and come out as Python objects, as over
    # SQLAlchemy.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
