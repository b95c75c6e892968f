"""GET /api/usage/{customerId} against the real stack: the summary, the reports and the daily
figures of the reported usage, and who may read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import bearer, new_customer, pending_reports, usage_body
from tests.helpers.waiting import wait_until

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


def _report(api_client, customer_id: str, token: str, instance: str, active: int, total: int,
            at: datetime) -> None:  # fmt: skip
    body = usage_body(customer_id, instance, active, total, at.isoformat())
    response = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert response.status_code == 202, response.text


def test_summary_matches_hand_computed_numbers(api_client, admin_headers, customer) -> None:
    customer_id, token = customer  # professional: 50 devices
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # SEED's example series on one instance, one report a day for the last 7 days ...
    series = [36, 37, 38, 40, 41, 42, 42]
    for days_ago, active in zip(range(6, -1, -1), series, strict=True):
        _report(api_client, customer_id, token, "production-1", active, 45,
                today - timedelta(days=days_ago))  # fmt: skip
    # ... plus an old report outside the window, which must not count.
    _report(api_client, customer_id, token, "production-1", 1, 45, today - timedelta(days=30))
    wait_until(lambda: pending_reports() == 0)

    response = api_client.get(f"/api/usage/{customer_id}?days=7", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == {
        "totalReports": 7,
        "avgActive": 39.4,  # 276 / 7 = 39.43
        "peakActive": 42,
        "currentActive": 42,
        "currentTotal": 45,
        "instances": 1,
        "limit": 50,
        "remaining": 8,
        "utilization": 84.0,
        "warning": "WARNING: 84.0% of device limit used! Consider upgrading to a higher plan.",
    }
    assert body["subscription"]["plan"] == "professional"
    assert body["subscription"]["deviceLimit"] == 50
    assert body["customer"]["customerId"] == customer_id
    assert [r["activeDevices"] for r in body["reports"]] == series[::-1]
    assert body["reports"][0]["utilization"] == 84.0
    assert [d["activeDevices"] for d in body["daily"]] == series
    # The 30-day window sees the old report too.
    wide = api_client.get(f"/api/usage/{customer_id}?days=31", headers=admin_headers).json()
    assert wide["summary"]["totalReports"] == 8
    assert wide["summary"]["avgActive"] == 34.6  # 277 / 8 = 34.625


def test_current_devices_sum_the_latest_report_of_each_instance(
    api_client, admin_headers, customer
) -> None:
    customer_id, token = customer
    now = datetime.now(UTC).replace(microsecond=0)
    _report(api_client, customer_id, token, "a", 10, 12, now - timedelta(hours=2))
    _report(api_client, customer_id, token, "a", 20, 22, now - timedelta(hours=1))
    _report(api_client, customer_id, token, "b", 25, 30, now - timedelta(hours=3))
    wait_until(lambda: pending_reports() == 0)
    summary = api_client.get(f"/api/usage/{customer_id}", headers=admin_headers).json()["summary"]
    assert (summary["currentActive"], summary["currentTotal"], summary["instances"]) == (45, 52, 2)
    assert summary["utilization"] == 90.0 and summary["remaining"] == 5
    assert (summary["totalReports"], summary["peakActive"], summary["avgActive"]) == (3, 25, 18.3)


def test_reading_usage_needs_an_admin_key_or_the_customers_own_license(
    api_client, admin_headers, customer
) -> None:
    customer_id, token = customer
    other_id, _ = new_customer("nosy@example.com")
    assert api_client.get(f"/api/usage/{customer_id}").status_code == 401
    assert (
        api_client.get(f"/api/usage/{customer_id}", headers=bearer("zbk_nope")).status_code == 401
    )
    assert api_client.get(f"/api/usage/{customer_id}", headers=bearer(token)).status_code == 200
    assert api_client.get(f"/api/usage/{other_id}", headers=bearer(token)).status_code == 403
    missing = api_client.get("/api/usage/cust_nobody", headers=admin_headers)
    assert missing.status_code == 404
    bad_days = api_client.get(f"/api/usage/{customer_id}?days=0", headers=admin_headers)
    assert bad_days.status_code == 422 and bad_days.json()["error"]["field"] == "days"


def test_unlimited_plans_show_unlimited(api_client, admin_headers) -> None:
    customer_id, _ = new_customer("big@example.com", plan="enterprise")
    body = api_client.get(f"/api/usage/{customer_id}", headers=admin_headers).json()
    assert body["summary"]["limit"] == body["summary"]["remaining"] == "unlimited"
    assert body["summary"]["utilization"] is None and body["summary"]["warning"] is None
    assert len(body["daily"]) == 7
