"""Fixtures and helpers the API tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.service import current_license
from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.helpers.rate_limits import forget_counters
from tests.helpers.waiting import wait_until


@pytest.fixture
def tight_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT", "5")
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_INSTANCE", "3")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    forget_counters()


# ---------------------------------------------------------------------------------------------
# Usage reports (POST /api/usage/report and GET /api/usage/{customerId})


def pending_reports() -> int:
    return pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL")  # type: ignore[return-value]


def count_reports() -> int:
    return pg_scalar("SELECT count(*) FROM usage_reports")  # type: ignore[return-value]


@pytest.fixture
def drained_reports(clean_tables: None) -> Iterator[None]:
    """Every accepted report is processed by the (session-wide) Celery worker: the test waits for
    that before the tables are emptied, so no task of one test runs into the next one's
    truncation. The usage report modules use it with `celery_worker`."""
    yield
    wait_until(lambda: pending_reports() == 0)


def new_customer(email: str, plan: str = "professional") -> tuple[str, str]:
    """A customer of the plan and its current license token."""
    with session_scope() as session:
        customer_id = create_customer(session, email=email, name=email, plan=plan).customer_id
        token = current_license(session, customer_id).token  # type: ignore[union-attr]
    return customer_id, token


@pytest.fixture
def customer() -> tuple[str, str]:
    return new_customer("acme@example.com")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def usage_body(customer_id: str, instance: str = "us-east-1", active: int = 23, total: int = 30,
               timestamp: str | None = "2025-10-21T10:00:00Z") -> dict:  # fmt: skip
    """A usage report in the camelCase body format."""
    body: dict = {
        "customerId": customer_id,
        "instanceId": instance,
        "metrics": {"activeDevices": active, "totalDevices": total},
    }
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body
