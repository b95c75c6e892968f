"""One group's database transaction, for the ingress's batchers (core/batching.py).

`GroupTransactions(work).flush` is a MicroBatcher flush that runs a group's work, written as
steps (core/db_steps.py: `work(dialect, group)` yields its statements), in one committed
transaction: straight over asyncpg on the event loop for PostgreSQL, in a worker thread over
SQLAlchemy for the embedded SQLite default. `Ingress` puts a batcher, its group transactions and
the publisher to the workers together, as each API ingress (usage reports, Stripe events) runs
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from anyio import to_thread
from sqlalchemy import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.batching import Coalescer, Flush, MicroBatcher
from core.db import get_engine, is_unavailable_sqlstate
from core.db_steps import Steps, run_steps, run_steps_on_asyncpg
from core.errors import ServiceUnavailableError

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
StoredId = TypeVar("StoredId")


class HeldConnections:
    """Database connections the SQLite ingress keeps from one group to the next.

    A pooled checkout pings the server first (pool_pre_ping), one round trip in four of a
    group's work. The ingress runs at most a few groups at once, so it keeps that many
    connections instead: no ping, and a connection that broke fails its group once and is
    replaced by a fresh one for the next group.
    """

    def __init__(self) -> None:
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error, on a held connection."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = get_engine().connect()
        session = Session(bind=connection, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except BaseException:
            with contextlib.suppress(DBAPIError):
                session.rollback()
            raise
        finally:
            session.close()
            if connection.invalidated or connection.closed:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)


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


# A group's work: given the dialect's name and the group, the steps that store it and return
# an outcome (or the exception to raise to its caller) per item.
GroupWork = Callable[[str, list[Item]], Steps[Sequence[Outcome | Exception]]]

# A held connection the server dropped (restart, failover, idle kill) is found only by using
# it: the group runs once more on a fresh one. Not a statement timeout (57014, also "operator
# intervention"), which would only wait out the timeout again. InternalClientError is the same
# drop seen half-way: the server's "terminating connection" arrived while the connection sat
# idle, its socket not yet seen closed, and asyncpg refuses the next statement.
_DROPPED = (
    asyncpg.InternalClientError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.CrashShutdownError,
    ConnectionError,
)


class GroupTransactions(Generic[Item, Outcome]):
    """Runs one group's work (`work(dialect, group)`, steps) in one committed transaction.

    `one_write`: the work writes with a single statement (the ingresses' one INSERT), and its
    reads need not share that statement's snapshot; on PostgreSQL each statement then commits by
    itself, without the round trips of an explicit transaction. A read after the write that
    fails (the stored ids of resent reports) fails the group's callers with 503 although the
    write committed: they resend, are told `duplicate`, and the sweeper enqueues what was not.

    On PostgreSQL it runs on the event loop over asyncpg itself: no thread hand-off, no GIL
    contention with the loop, and none of SQLAlchemy's per-statement cost, which was most of a
    group's CPU. The connections are this object's own few: no ping per group; a connection the
    server dropped is replaced and the group runs once more. Elsewhere (the embedded SQLite
    default) it runs in a worker thread on held connections. Made per API process at start-up
    and closed at shutdown: asyncpg connections belong to the event loop that opened them.
    """

    def __init__(
        self, work: GroupWork[Item, Outcome], *, one_write: bool = False, connections: int = 4
    ) -> None:
        from core.settings import get_settings, normalise_database_url

        settings = get_settings()
        url = make_url(normalise_database_url(settings.resolved_database_url))
        self._work = work
        self._one_write = one_write
        self._held = HeldConnections()
        self._postgres = url.get_backend_name() == "postgresql"
        self._connections: HeldAsyncpgConnections | None = None
        self._most = connections
        self._acquire_timeout = settings.database_pool_timeout_seconds
        # DATABASE_URL is written for libpq (psycopg2): of its query parameters asyncpg takes
        # sslmode (as `ssl`, same values); the others do not apply to it.
        sslmode = url.query.get("sslmode")
        self._connect_args: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
            "ssl": sslmode if isinstance(sslmode, str) else None,
            "timeout": 5,
            # The server ends a statement at DATABASE_STATEMENT_TIMEOUT_MS; this ends the wait
            # for one whose connection was lost without a word (then 503, as for a timeout).
            "command_timeout": settings.database_statement_timeout_ms / 1000 + 5,
            "server_settings": {
                "lock_timeout": str(settings.database_lock_timeout_ms),
                "statement_timeout": str(settings.database_statement_timeout_ms),
            },
        }

    @property
    def flush(self) -> Flush[Item, Outcome]:
        return self._flush_async if self._postgres else self._flush_in_thread

    async def _flush_async(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        try:
            try:
                return await self._run_group(group)
            except _DROPPED:
                # The work is idempotent (every row is keyed), so the group runs once more on a
                # fresh connection instead of failing its callers; a database that is really
                # down fails the second try too, and the callers get 503.
                return await self._run_group(group)
        except asyncpg.PostgresError as exc:
            if not is_unavailable_sqlstate(exc.sqlstate) and not isinstance(exc, _DROPPED):
                raise
            raise DatabaseUnavailableError("the database is unavailable; retry later") from exc
        except (OSError, TimeoutError, *_DROPPED) as exc:
            # Refused, unreachable, timed out, or every connection busy for
            # DATABASE_POOL_TIMEOUT_SECONDS: the group was not stored, its callers retry.
            raise DatabaseUnavailableError("the database is unavailable; retry later") from exc

    async def _run_group(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        if self._connections is None:
            # Made on the loop that uses it; it opens no connection yet.
            self._connections = HeldAsyncpgConnections(
                self._connect_args, most=self._most, wait_seconds=self._acquire_timeout
            )
        async with self._connections.connection() as connection:
            steps = self._work("postgresql", group)
            if self._one_write:
                # Each statement commits by itself: two round trips (BEGIN, COMMIT) fewer.
                return await run_steps_on_asyncpg(connection, steps)
            async with connection.transaction():
                return await run_steps_on_asyncpg(connection, steps)

    def _flush_in_thread(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        with self._held.transaction() as session:
            dialect = session.get_bind().dialect.name
            return run_steps(session, self._work(dialect, group))

    async def aclose(self) -> None:
        if self._connections is not None:
            connections, self._connections = self._connections, None
            await connections.aclose()


async def _set_codecs(connection: asyncpg.Connection) -> None:
    # JSON columns (the Stripe event payloads) go in and come out as Python objects, as over
    # SQLAlchemy.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


@dataclass(frozen=True, slots=True)
class Ingress(Generic[Item, Outcome, StoredId]):
    """An API process's ingress: concurrent requests share a group transaction (`batcher`,
    `transactions`), and the ids of what each group stored go to the workers together
    (`to_workers`). Made at start-up, closed at shutdown."""

    batcher: MicroBatcher[Item, Outcome]
    transactions: GroupTransactions[Item, Outcome]
    to_workers: Coalescer[StoredId]

    @classmethod
    def start(
        cls,
        work: GroupWork[Item, Outcome],
        to_workers: Coalescer[StoredId],
        stored_ids: Callable[[list[Item], Sequence[Outcome | Exception]], Iterable[StoredId]],
        *,
        admit: Admit[Item] | None = None,
    ) -> Ingress[Item, Outcome, StoredId]:
        """`work` stores a group with one write (its reads, such as the license check, may see
        a moment earlier than it); `stored_ids` names, of a group's items and outcomes, what the
        workers must now process (not duplicates, not failures). `admit`, given a group, says
        per item why it may not be stored (a rate limit), or None; the refused items' callers
        get that exception and only the others are stored."""
        transactions: GroupTransactions[Item, Outcome] = GroupTransactions(work, one_write=True)
        flush = transactions.flush if admit is None else _admitting(admit, transactions.flush)

        async def hand_to_workers(
            items: list[Item], outcomes: Sequence[Outcome | Exception]
        ) -> None:
            to_workers.add(stored_ids(items, outcomes))

        batcher = MicroBatcher.from_settings(flush, hand_to_workers)
        return cls(batcher, transactions, to_workers)

    async def aclose(self) -> None:
        # The groups in flight commit and publish first, then the publisher and connections go.
        await self.batcher.aclose()
        await self.to_workers.aclose()
        await self.transactions.aclose()


# Per item of a group: why it may not be stored, or None.
Admit = Callable[[list[Item]], Awaitable[list[Exception | None]]]


def _admitting(admit: Admit[Item], flush: Flush[Item, Outcome]) -> Flush[Item, Outcome]:
    """`flush` for the items `admit` lets through; the refusal for the others.

    A per-group check costs one round trip for the whole group (one Redis call for the rate
    limits of all its requests) instead of one each, and no request waits through a stage of
    its own before its group is formed.
    """

    async def admitted_flush(group: list[Item]) -> Sequence[Outcome | Exception]:
        refusals = await admit(group)
        admitted = [item for item, refused in zip(group, refusals, strict=True) if refused is None]
        stored: Sequence[Outcome | Exception] = []
        if admitted and inspect.iscoroutinefunction(flush):
            stored = await flush(admitted)
        elif admitted:
            stored = await to_thread.run_sync(flush, admitted)  # type: ignore[arg-type]
        outcomes = iter(stored)
        return [next(outcomes) if refused is None else refused for refused in refusals]

    return admitted_flush
