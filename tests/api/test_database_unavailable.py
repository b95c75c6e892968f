"""A database that cannot take work is "retry later", never a 500: read-only (after a failover to
a standby, or a demoted primary), out of resources (class 53) and connection trouble (class 08)
answer 503 with Retry-After over psycopg2 (the FastAPI routes) and asyncpg (the usage ingress)
alike, and store nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.service import current_license
from tests.conftest import POSTGRES_ADMIN_URL, TEST_DATABASE, pg_scalar


def _as_admin(*statements: str) -> None:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


# Every connection the service holds is dropped, as a failover drops them: new ones see the
# database's new settings.
_DROP_CONNECTIONS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    f"WHERE datname = '{TEST_DATABASE}' AND pid <> pg_backend_pid()"
)


@contextmanager
def _read_only_database() -> Iterator[None]:
    """The test database as a standby serves it: every transaction read-only (SQLSTATE 25006
    on any write)."""
    _as_admin(
        f'ALTER DATABASE "{TEST_DATABASE}" SET default_transaction_read_only = on',
        _DROP_CONNECTIONS,
    )
    try:
        yield
    finally:
        _as_admin(
            f'ALTER DATABASE "{TEST_DATABASE}" RESET default_transaction_read_only',
            _DROP_CONNECTIONS,
        )


@contextmanager
def _server_refusing_inserts(sqlstate: str) -> Iterator[None]:
    """Every INSERT into customers and usage_reports fails with `sqlstate`, raised by the server
    (a trigger): a disk that is full or a server out of connections cannot be produced on a
    shared test server, but the error the drivers receive is the same."""
    with session_scope() as session:
        session.execute(
            text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"RAISE EXCEPTION 'refused for the test' USING ERRCODE = '{sqlstate}'; END $$"
            )
        )
        for table in ("customers", "usage_reports"):
            session.execute(
                text(
                    f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
                )
            )
    try:
        yield
    finally:
        with session_scope() as session:
            for table in ("customers", "usage_reports"):
                session.execute(text(f"DROP TRIGGER refuse_insert ON {table}"))
            session.execute(text("DROP FUNCTION refuse_insert()"))


@pytest.fixture
def instance() -> tuple[str, str]:
    with session_scope() as session:
        customer_id = create_customer(session, email="ro@example.com", name="RO").customer_id
        token = current_license(session, customer_id).token  # type: ignore[union-attr]
    return customer_id, token


def _attempts(api_client, admin_headers, instance) -> list:  # type: ignore[no-untyped-def]
    customer_id, token = instance
    created = api_client.post(
        "/api/customers", json={"email": "new@example.com"}, headers=admin_headers
    )
    report = api_client.post(
        "/api/usage/report",
        json={
            "customerId": customer_id,
            "instanceId": "i-1",
            "metrics": {"activeDevices": 1, "totalDevices": 2},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    return [created, report]


def _assert_retry_later(responses: list) -> None:  # type: ignore[type-arg]
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["error"]["code"] == "unavailable"
        assert int(response.headers["retry-after"]) > 0
    assert pg_scalar("SELECT count(*) FROM customers WHERE email = 'new@example.com'") == 0
    assert pg_scalar("SELECT count(*) FROM usage_reports") == 0


def test_a_read_only_database_is_503_with_retry_after(api_client, admin_headers, instance) -> None:
    with _read_only_database():
        responses = _attempts(api_client, admin_headers, instance)
    _assert_retry_later(responses)
    # Writable again: the same requests are stored.
    after = _attempts(api_client, admin_headers, instance)
    assert [response.status_code for response in after] == [201, 202]


@pytest.mark.parametrize(
    "sqlstate",
    [
        "53100",  # disk_full
        "53300",  # too_many_connections
        "08006",  # connection_failure
    ],
)
def test_a_server_out_of_resources_or_connections_is_503_with_retry_after(
    api_client, admin_headers, instance, sqlstate
) -> None:
    with _server_refusing_inserts(sqlstate):
        responses = _attempts(api_client, admin_headers, instance)
    _assert_retry_later(responses)
