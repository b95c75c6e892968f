"""The migrations run up and down on PostgreSQL and SQLite and match the models."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from core.migrations import alembic_config
from models import Base
from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers.database import create_database, drop_database

EXPECTED_TABLES = {
    "customers",
    "subscriptions",
    "usage_reports",
    "stripe_events",
    "licenses",
    "usage_daily",
    "api_keys",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "heads")
    assert _tables(url) >= EXPECTED_TABLES
    assert _tables(url) == set(Base.metadata.tables)
    # The models and the migrations describe the same schema.
    command.check(config)
    command.downgrade(config, "base")
    assert _tables(url) == set()
    command.upgrade(config, "heads")
    assert _tables(url) == set(Base.metadata.tables)


def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'billing.db'}")


def test_migrations_up_and_down_on_postgresql() -> None:
    name = f"billing_migrate_{uuid.uuid4().hex[:8]}"
    create_database(POSTGRES_ADMIN_URL, name)
    try:
        _round_trip(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    finally:
        drop_database(POSTGRES_ADMIN_URL, name)


@pytest.mark.parametrize("email", ["Someone@Example.com", "SOMEONE@example.COM"])
def test_email_unique_index_ignores_letter_case(db_session, email: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from models import Customer

    db_session.add(Customer(customer_id="cust_a", email="someone@example.com"))
    db_session.commit()
    db_session.add(Customer(customer_id="cust_b", email=email))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
