"""POST /api/usage/report refuses an invalid report with a 422 naming the field, and stores nothing
of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.settings import get_settings
from tests.api.conftest import bearer, count_reports, usage_body

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metrics": {"activeDevices": -1, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 2.5, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 4, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 1}}, "metrics.totalDevices"),
        ({"instanceId": ""}, "instanceId"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "next tuesday"}, "timestamp"),
    ],
)
def test_invalid_reports_get_422_naming_the_field_and_store_nothing(
    api_client, customer, change: dict, field: str
) -> None:
    customer_id, token = customer
    body = {**usage_body(customer_id), **change}
    response = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert count_reports() == 0


def test_a_body_that_is_not_a_json_object_gets_422(api_client, customer) -> None:
    _, token = customer
    headers = {**bearer(token), "Content-Type": "application/json"}
    for content in (b"[1, 2]", b"{not json", b""):
        response = api_client.post("/api/usage/report", content=content, headers=headers)
        assert response.status_code == 422, (content, response.text)
        assert response.json()["error"]["field"]
    assert count_reports() == 0


def test_a_report_slightly_ahead_of_our_clock_is_accepted(api_client, customer) -> None:
    customer_id, token = customer
    ahead = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    response = api_client.post(
        "/api/usage/report", json=usage_body(customer_id, timestamp=ahead), headers=bearer(token)
    )
    assert response.status_code == 202


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_timestamp_at_the_edge_of_the_calendar_is_a_422(api_client, customer, timestamp) -> None:
    customer_id, token = customer
    body = usage_body(customer_id, timestamp=timestamp)
    response = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "timestamp"
    assert count_reports() == 0


def test_a_device_count_beyond_usage_max_devices_is_a_422_naming_the_field(
    api_client, customer
) -> None:
    customer_id, token = customer
    most = get_settings().usage_max_devices
    body = usage_body(customer_id, active=1, total=most + 1)
    refused = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "metrics.totalDevices"
    flat = {"customer_id": customer_id, "instance_id": "x", "active_devices": 2**31 - 1}
    refused = api_client.post(
        "/api/usage/report", json={**flat, "total_devices": 2**31 - 1}, headers=bearer(token)
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "active_devices"
    assert count_reports() == 0
    at_most = usage_body(customer_id, active=most, total=most)
    assert api_client.post("/api/usage/report", json=at_most, headers=bearer(token)).is_success
