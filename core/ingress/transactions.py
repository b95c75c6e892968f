"""One group's database transaction, for the ingress's batcher (core/ingress/batcher.py).

`GroupTransactions(work).flush` runs a group's work, written as steps (core/db_steps.py:
`work(dialect, group)` yields its statements), in one committed transaction: straight over
asyncpg on the event loop for PostgreSQL; on the embedded SQLite default, in a worker thread over
an ordinary session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg
from anyio import to_thread
from sqlalchemy import make_url

from core.db import is_unavailable_sqlstate, session_scope
from core.db_steps import Steps, run_steps, run_steps_on_asyncpg
from core.ingress.connections import DatabaseUnavailableError, HeldAsyncpgConnections

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


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
    default) it runs in a worker thread on an ordinary session. Made per API process at start-up
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

    async def flush(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        if not self._postgres:
            # The embedded SQLite default (`billing dev`): the plain path, a session in a worker
            # thread, as any request's.
            return await to_thread.run_sync(self._flush_in_session, group)
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

    def _flush_in_session(self, group: list[Item]) -> Sequence[Outcome | Exception]:
        with session_scope() as session:
            return run_steps(session, self._work(session.get_bind().dialect.name, group))

    async def aclose(self) -> None:
        if self._connections is not None:
            connections, self._connections = self._connections, None
            await connections.aclose()
