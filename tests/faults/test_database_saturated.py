"""A busy database answers 503 with Retry-After, never 500 and never an endless wait.

A request queued behind a lock gives up after DATABASE_LOCK_TIMEOUT_MS; a request that finds
every pooled connection busy gives up after DATABASE_POOL_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg2
import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.helpers.processes import api_server

pytestmark = pytest.mark.faults


@contextmanager
def customers_locked() -> Iterator[None]:
    """Another transaction holds the customers table, as a long customer-row update would."""
    connection = psycopg2.connect(TEST_DATABASE_URL.replace("postgresql+psycopg2", "postgresql"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_request_waiting_behind_a_lock_gets_503_after_the_lock_timeout(admin_key: str) -> None:
    env = {"DATABASE_LOCK_TIMEOUT_MS": "500"}
    headers = {"Authorization": f"Bearer {admin_key}"}
    with api_server(env=env) as url, customers_locked():
        response = httpx.get(f"{url}/api/customers", headers=headers, timeout=20)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["retry-after"]


def test_an_exhausted_connection_pool_gets_503_not_500(admin_key: str) -> None:
    env = {
        "DATABASE_POOL_SIZE": "1",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT_SECONDS": "0.5",
        "DATABASE_LOCK_TIMEOUT_MS": "4000",
    }
    headers = {"Authorization": f"Bearer {admin_key}"}
    answers: dict[str, httpx.Response] = {}

    def holder(url: str) -> None:
        # Holds the only pooled connection while it waits for the lock.
        answers["holder"] = httpx.get(f"{url}/api/customers", headers=headers, timeout=20)

    with api_server(env=env) as url, customers_locked():
        thread = threading.Thread(target=holder, args=(url,))
        thread.start()
        threading.Event().wait(1.0)
        answers["second"] = httpx.get(f"{url}/api/customers", headers=headers, timeout=20)
        thread.join(timeout=20)
    second = answers["second"]
    assert second.status_code == 503, second.text
    assert second.json()["error"]["message"] == "the database is busy; retry later"
    assert second.headers["retry-after"] == "2"
    assert answers["holder"].status_code == 503
