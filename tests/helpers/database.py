"""Creating, emptying and dropping the throwaway PostgreSQL databases tests run on."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from models import Base


def _admin_engine(admin_url: str):  # type: ignore[no-untyped-def]
    return create_engine(admin_url, isolation_level="AUTOCOMMIT")


def create_database(admin_url: str, name: str) -> None:
    engine = _admin_engine(admin_url)
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(admin_url: str, name: str) -> None:
    engine = _admin_engine(admin_url)
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def truncate_all(database_url: str, attempts: int = 10) -> None:
    """Empty every table between tests.

    A task of the previous test may still hold row locks; TRUNCATE then waits or deadlocks with it,
    so it gives up quickly and tries again once the task has finished.
    """
    from core.db import engine_for

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    for attempt in range(attempts):
        try:
            with engine_for(database_url).begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
