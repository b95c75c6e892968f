"""One group's database transaction, for the ingress's batchers (core/batching.py).

`GroupTransactions(work).flush` is a MicroBatcher flush that runs `work(session, group)` in one
committed transaction: over asyncpg on the event loop for PostgreSQL, in a worker thread on held
connections for the embedded SQLite default. `Ingress` puts a batcher, its group transactions
and the publisher to the workers together, as each API ingress (usage reports, Stripe events)
runs them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session

from core.batching import Coalescer, Flush, MicroBatcher
from core.db import get_engine
from core.errors import ServiceUnavailableError

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
StoredId = TypeVar("StoredId")


class HeldConnections:
    """Database connections the ingress keeps from one group to the next.

    A pooled checkout pings the server first (pool_pre_ping), one round trip in four of a
    group's work. The ingress runs at most a few groups at once, so it keeps that many
    connections instead: no ping, and a connection the server dropped fails its group once (the
    callers get 503 and resend) and is replaced by a fresh one for the next group.
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


GroupWork = Callable[[Session, list[Item]], Sequence[Outcome | Exception]]


class GroupTransactions(Generic[Item, Outcome]):
    """Runs one group's database work (`work(session, group)`) in one committed transaction.

    On PostgreSQL it runs on the event loop over asyncpg: the same SQLAlchemy code (a Session
    driven through `run_sync`, no thread), so a group costs no thread hand-off and no GIL
    contention with the loop, and the connections are this object's own few (no ping per
    group: a connection the server dropped fails its group once, with 503, and is replaced).
    Elsewhere (the embedded SQLite default) it runs in a worker thread on held connections.
    Made per API process at start-up and closed at shutdown: asyncpg connections belong to
    the event loop that opened them.
    """

    def __init__(self, work: GroupWork[Item, Outcome], *, connections: int = 4) -> None:
        from core.settings import get_settings, normalise_database_url

        settings = get_settings()
        url = make_url(normalise_database_url(settings.resolved_database_url))
        self._work = work
        self._engine: AsyncEngine | None = None
        self._held = HeldConnections()
        if url.get_backend_name() == "postgresql":
            connect_args: dict[str, Any] = {
                "timeout": 5,
                "server_settings": {
                    "lock_timeout": str(settings.database_lock_timeout_ms),
                    "statement_timeout": str(settings.database_statement_timeout_ms),
                },
            }
            # DATABASE_URL is written for libpq (psycopg2): of its query parameters asyncpg
            # takes sslmode (as `ssl`, same values); the others do not apply to it.
            sslmode = url.query.get("sslmode")
            if isinstance(sslmode, str):
                connect_args["ssl"] = sslmode
            self._engine = create_async_engine(
                url.set(drivername="postgresql+asyncpg", query={}),
                pool_size=connections,
                max_overflow=0,
                pool_timeout=settings.database_pool_timeout_seconds,
                connect_args=connect_args,
            )

    @property
    def flush(self) -> Flush[Item, Outcome]:
        return self._flush_async if self._engine is not None else self._flush_in_thread

    async def _flush_async(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        assert self._engine is not None
        try:
            try:
                return await self._run_group(group)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A pooled connection the server dropped (restart, failover, idle kill) is found
                # only by using it. The work is idempotent (every row is keyed), so the group runs
                # once more on a fresh connection instead of failing its callers; a database that
                # is really down fails the second try too, and the callers get 503.
                return await self._run_group(group)
        except (OSError, TimeoutError) as exc:
            # asyncpg's own connect errors (refused, unreachable, timed out) are not DBAPI
            # errors: the group was not stored, its callers retry (503), as with psycopg2.
            raise DatabaseUnavailableError("the database is unavailable; retry later") from exc

    async def _run_group(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        assert self._engine is not None
        async with self._engine.connect() as connection:
            return await connection.run_sync(self._in_session, group)

    def _in_session(
        self, connection: Connection, group: list[Item]
    ) -> Sequence[Outcome | Exception]:
        with Session(bind=connection, expire_on_commit=False) as session:
            outcomes = self._work(session, group)
            session.commit()
            return outcomes

    def _flush_in_thread(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        with self._held.transaction() as session:
            return self._work(session, group)

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


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
    ) -> Ingress[Item, Outcome, StoredId]:
        """`work` stores a group; `stored_ids` names, of a group's items and outcomes, what the
        workers must now process (not duplicates, not failures)."""
        transactions: GroupTransactions[Item, Outcome] = GroupTransactions(work)

        async def hand_to_workers(
            items: list[Item], outcomes: Sequence[Outcome | Exception]
        ) -> None:
            to_workers.add(stored_ids(items, outcomes))

        batcher = MicroBatcher.from_settings(transactions.flush, hand_to_workers)
        return cls(batcher, transactions, to_workers)

    async def aclose(self) -> None:
        # The groups in flight commit and publish first, then the publisher and connections go.
        await self.batcher.aclose()
        await self.to_workers.aclose()
        await self.transactions.aclose()
