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


def test_instances_known_before_the_trust_migration_are_not_taken_for_new(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from models.base import UTCDateTime

    url = f"sqlite:///{tmp_path / 'billing.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008_money_edges")
    now = datetime.now(UTC)
    first_report = now - timedelta(days=40)
    engine = create_engine(url)
    stamp = UTCDateTime(timezone=True).process_bind_param
    try:
        with engine.begin() as connection:
            for instance in ("reported", "pruned"):
                connection.execute(
                    text(
                        "INSERT INTO instance_usage (customer_id, instance_id, active_devices,"
                        " total_devices, reported_at, report_id, updated_at)"
                        " VALUES ('c1', :instance, 1, 1, :now, 1, :now)"
                    ),
                    {"instance": instance, "now": stamp(now, engine.dialect)},
                )
            connection.execute(
                text(
                    "INSERT INTO usage_reports (customer_id, instance_id, active_devices,"
                    " total_devices, reported_at, attempts, created_at)"
                    " VALUES ('c1', 'reported', 1, 1, :at, 1, :at)"
                ),
                {"at": stamp(first_report, engine.dialect)},
            )
        command.upgrade(config, "0009_trust")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT instance_id, first_seen_at FROM instance_usage")
            ).all()
    finally:
        engine.dispose()
    first_seen = {
        instance: UTCDateTime(timezone=True).process_result_value(
            datetime.fromisoformat(str(value)), engine.dialect
        )
        for instance, value in rows
    }
    assert first_seen["reported"] == first_report
    assert first_seen["pruned"] is not None and first_seen["pruned"] < now - timedelta(days=365)


def test_an_invalid_company_order_index_left_by_an_interrupted_build_is_built_again() -> None:
    """A concurrent index build that failed leaves an INVALID index, which PostgreSQL never
    reads; CREATE INDEX ... IF NOT EXISTS would keep it. 0012 drops it and builds it again."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from models import Customer

    name = f"billing_migrate_{uuid.uuid4().hex[:8]}"
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    index = "ix_customers_company_lower_order"
    valid = text(
        "SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indexrelid = to_regclass(:index)"
    )
    create_database(POSTGRES_ADMIN_URL, name)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        config = alembic_config(url)
        command.upgrade(config, "0011_retention")
        with Session(engine) as session:
            for number in (1, 2):
                session.add(
                    Customer(
                        customer_id=f"c{number}", email=f"{number}@a.example", company_name="Acme"
                    )
                )
            session.commit()
        with engine.connect() as connection:
            # The build fails on its last pass (a duplicate), as an interrupted one would.
            with pytest.raises(IntegrityError):
                connection.execute(
                    text(f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON customers (company_name)")
                )
            assert connection.execute(valid, {"index": index}).one()[0] is False
        command.upgrade(config, "0012_console_sort")
        with engine.connect() as connection:
            is_valid, definition = connection.execute(valid, {"index": index}).one()
    finally:
        engine.dispose()
        drop_database(POSTGRES_ADMIN_URL, name)
    assert is_valid is True
    assert definition.endswith("USING btree (lower((company_name)::text), id)")
