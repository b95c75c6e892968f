"""Creating, emptying and dropping the throwaway PostgreSQL databases tests run on."""

from __future__ import annotations

from sqlalchemy import create_engine, text

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


def truncate_all(database_url: str) -> None:
    from models.session import engine_for

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine_for(database_url).begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
