"""POST /api/usage/report against the real stack: either body format is stored the same way, once
however often it is resent, and a worker processes it."""

from __future__ import annotations

import jwt
import pytest

from tests.api.conftest import bearer, count_reports, new_customer, usage_body
from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


def test_both_body_formats_are_accepted_and_stored_the_same_way(api_client) -> None:
    camel_id, camel_token = new_customer("camel@example.com")
    snake_id, snake_token = new_customer("snake@example.com")
    camel = api_client.post(
        "/api/usage/report", json=usage_body(camel_id), headers=bearer(camel_token)
    )
    snake = api_client.post(
        "/api/usage/report",
        json={
            "customer_id": snake_id,
            "instance_id": "us-east-1",
            "active_devices": 23,
            "total_devices": 30,
            "timestamp": "2025-10-21T10:00:00Z",
        },
        headers=bearer(snake_token),
    )
    assert camel.status_code == snake.status_code == 202, (camel.text, snake.text)
    assert camel.json()["status"] == snake.json()["status"] == "accepted"
    assert "duplicate" not in camel.json() and "license" not in camel.json()

    def stored(customer_id: str, token: str) -> str:
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        row = pg_scalar(
            f"SELECT concat_ws('|', instance_id, active_devices, total_devices, "
            f"reported_at AT TIME ZONE 'UTC', license_jti = '{jti}') "
            f"FROM usage_reports WHERE customer_id = '{customer_id}'"
        )
        return row  # type: ignore[return-value]

    assert stored(camel_id, camel_token) == stored(snake_id, snake_token)
    assert stored(camel_id, camel_token) == "us-east-1|23|30|2025-10-21 10:00:00|t"
    # The same report in the other format is the same report: stored once.
    again = api_client.post(
        "/api/usage/report",
        json={
            "customer_id": camel_id,
            "instance_id": "us-east-1",
            "active_devices": 23,
            "total_devices": 30,
            "timestamp": "2025-10-21T12:00:00+02:00",
        },
        headers=bearer(camel_token),
    )
    assert again.status_code == 202
    assert again.json() == {
        "status": "accepted",
        "reportId": camel.json()["reportId"],
        "duplicate": True,
    }
    assert count_reports() == 2


def test_a_report_is_processed_by_a_worker(api_client, customer) -> None:
    customer_id, token = customer
    response = api_client.post(
        "/api/usage/report", json=usage_body(customer_id, timestamp=None), headers=bearer(token)
    )
    assert response.status_code == 202
    report_id = response.json()["reportId"]
    wait_until(
        lambda: pg_scalar(
            f"SELECT processed_at IS NOT NULL FROM usage_reports WHERE id={report_id}"
        )
    )
    assert (
        pg_scalar(f"SELECT active_devices FROM instance_usage WHERE customer_id = '{customer_id}'")
        == 23
    )


def test_the_same_idempotency_key_is_stored_once(api_client, customer) -> None:
    customer_id, token = customer
    headers = {**bearer(token), "Idempotency-Key": "report-2025-10-21"}
    body = usage_body(customer_id, timestamp=None)  # the server's clock differs on each try
    first = api_client.post("/api/usage/report", json=body, headers=headers)
    second = api_client.post("/api/usage/report", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["duplicate"] is True
    assert second.json()["reportId"] == first.json()["reportId"]
    assert count_reports() == 1
    # The key reused for other numbers is a client bug, not a duplicate.
    changed = api_client.post(
        "/api/usage/report", json=usage_body(customer_id, active=1, timestamp=None), headers=headers
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["field"] == "Idempotency-Key"
    assert count_reports() == 1


def test_a_flat_report_without_timestamp_or_key_resent_is_stored_once(api_client, customer) -> None:
    customer_id, token = customer
    body = {"customer_id": customer_id, "instance_id": "dev-1", "active_devices": 5,
            "total_devices": 10}  # fmt: skip
    # The instance retries after a dropped connection: the same body, no timestamp, no key.
    first = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    second = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "duplicate": True}
    assert count_reports() == 1
    # Other numbers from the same instance are a new report.
    changed = api_client.post(
        "/api/usage/report", json={**body, "active_devices": 6}, headers=bearer(token)
    )
    assert changed.status_code == 202 and "duplicate" not in changed.json()
    assert count_reports() == 2
