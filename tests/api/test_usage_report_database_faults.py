"""POST /api/usage/report when the database drops its connections or holds a lock too long."""

from __future__ import annotations

import pytest

from core.settings import get_settings
from tests.api.conftest import bearer, count_reports, usage_body
from tests.conftest import pg_scalar

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


def test_after_the_database_dropped_the_ingress_connections_reports_are_still_stored(
    api_client, customer
) -> None:
    customer_id, token = customer

    def report(instance: str) -> int:
        body = usage_body(customer_id, instance=instance)
        return api_client.post("/api/usage/report", json=body, headers=bearer(token)).status_code

    assert report("before") == 202
    # A database restart or failover: every connection the service holds is gone.
    pg_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    # The group that finds its connection dropped runs again on a fresh one: stored, not a 503.
    assert report("after") == 202
    assert report("later") == 202
    assert pg_scalar("SELECT count(*) FROM usage_reports") == 3


def test_a_report_that_waits_out_the_lock_timeout_gets_503_and_is_stored_when_resent(
    customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock not granted within DATABASE_LOCK_TIMEOUT_MS (a migration holding the table) is
    "retry later", never a 500; nothing is half-stored and the resend is stored once."""
    import psycopg2
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import TEST_DATABASE_URL

    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_MS", "300")
    get_settings.cache_clear()
    customer_id, token = customer
    body = usage_body(customer_id, instance="locked-out")
    locker = psycopg2.connect(TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            with locker.cursor() as cursor:
                cursor.execute("LOCK TABLE usage_reports IN ACCESS EXCLUSIVE MODE")
                refused = client.post("/api/usage/report", json=body, headers=bearer(token))
            locker.rollback()
            resent = client.post("/api/usage/report", json=body, headers=bearer(token))
    finally:
        locker.close()
        monkeypatch.undo()
        get_settings.cache_clear()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "unavailable"
    assert refused.headers["retry-after"] == "5"
    assert resent.status_code == 202 and "duplicate" not in resent.json()
    assert count_reports() == 1
