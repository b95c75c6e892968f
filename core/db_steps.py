"""Database work written once, run over a SQLAlchemy session or straight over asyncpg.

The ingress stores each group of concurrent requests with a few statements. Over SQLAlchemy each
statement costs more CPU than the rest of the group's work (bench/ingress.py profiles it), so on
PostgreSQL the API runs them on asyncpg itself. The work is written once, as steps: a generator
that yields each `Query` (a SQLAlchemy statement and its parameters) and is sent back the rows,
by name; it returns its result. `run_steps` drives it over a session or connection (any
database, any caller), `run_steps_on_asyncpg` over an asyncpg connection, with the statement
compiled by SQLAlchemy once per process. So each statement still has one definition, and the
business rules around it one implementation.

    def counting(dialect: str, names: list[str]) -> Steps[int]:
        rows = yield Query(COUNT_STATEMENT, {"names": names})
        return rows[0]["n"]

Statements meant for asyncpg use only plain bind parameters: no `expanding` IN lists (on
PostgreSQL write `column == any_(bindparam(..., type_=ARRAY(...)))`), and bind values are sent as
they are (no type processors): timestamps must be timezone-aware.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Executable, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import asyncpg

Result = TypeVar("Result")
Row = Mapping[str, Any]
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Query:
    """A statement to run and its parameters: one set, or (over SQLAlchemy only: SQLite's
    `insert_many`) many for an executemany."""

    statement: Executable
    params: Params | None = None


# Yields queries, is sent each query's rows, returns its result.
Steps = Generator[Query, list[Row], Result]


def run_steps(db: Session | Connection, steps: Steps[Result]) -> Result:
    """Run `steps` on a SQLAlchemy session or connection (the caller owns the transaction)."""
    # Core execution on the session's connection (in its transaction): the statements are Core.
    connection = db.connection() if isinstance(db, Session) else db
    try:
        query = next(steps)
        while True:
            result = connection.execute(query.statement, query.params)  # type: ignore[arg-type]
            rows = list(result.mappings()) if result.returns_rows else []
            query = steps.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_steps_on_asyncpg(connection: asyncpg.Connection, steps: Steps[Result]) -> Result:
    """Run `steps` on an asyncpg connection (the caller owns the transaction)."""
    try:
        query = next(steps)
        while True:
            sql, names = _compiled_for_asyncpg(query.statement)
            params: Any = query.params or {}
            rows = await connection.fetch(sql, *(params[name] for name in names))
            query = steps.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


@lru_cache(maxsize=64)
def _compiled_for_asyncpg(statement: Executable) -> tuple[str, tuple[str, ...]]:
    compiled = statement.compile(dialect=PGDialect_asyncpg())
    return compiled.string, tuple(compiled.positiontup or ())


@lru_cache(maxsize=16)
def insert_many(
    table: Table,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
    dialect: str,
    conflict_target: tuple[str, ...] | None = None,
) -> Executable:
    """INSERT of many rows that skips the ones conflicting with a stored row, RETURNING
    `returning` of those inserted. Its parameters are `many_rows(dialect, rows, columns)`.

    On PostgreSQL one statement over column arrays (unnest): the same SQL for any number of
    rows, so it is prepared once per connection. Elsewhere SQLAlchemy's "insertmanyvalues".
    """
    returned = [table.c[name] for name in returning]
    if dialect != "postgresql":
        return (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=conflict_target)
            .returning(*returned)
        )
    arrays = (
        func.unnest(*(bindparam(name, type_=ARRAY(table.c[name].type)) for name in columns))
        .table_valued(*columns)
        .render_derived()
    )
    rows = select(*(arrays.c[name] for name in columns))
    return (
        postgresql.insert(table)
        .from_select(list(columns), rows)
        .on_conflict_do_nothing(index_elements=conflict_target)
        .returning(*returned)
    )


def many_rows(dialect: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Params:
    """`insert_many`'s parameters: a column array each on PostgreSQL, else the rows."""
    if dialect != "postgresql":
        return rows
    return {name: [row[name] for row in rows] for name in columns}
