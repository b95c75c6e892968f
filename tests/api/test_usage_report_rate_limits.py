"""POST /api/usage/report is rate limited per instance and per license."""

from __future__ import annotations

import pytest

from core.settings import get_settings
from tests.api.conftest import bearer, count_reports, usage_body
from tests.helpers.rate_limits import forget_counters

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


def test_usage_reports_are_limited_per_instance(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_INSTANCE", "3")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    customer_id, token = customer
    try:

        def report(instance: str, minute: int, body: dict | None = None) -> int:
            stamp = f"2025-10-21T10:{minute:02d}:00Z"
            body = body or usage_body(customer_id, instance, timestamp=stamp)
            answer = api_client.post("/api/usage/report", json=body, headers=bearer(token))
            return answer.status_code

        assert [report("eu-1", minute) for minute in range(4)] == [202, 202, 202, 429]
        refused = api_client.post(
            "/api/usage/report", json=usage_body(customer_id, "eu-1"), headers=bearer(token)
        )
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        # Another instance of the same customer has its own allowance.
        assert report("us-1", 0) == 202
        # The snake_case body format names the same instance.
        flat = {"customer_id": customer_id, "instance_id": "eu-1", "active_devices": 1}
        assert report("eu-1", 9, {**flat, "total_devices": 2}) == 429
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_counters()
    assert count_reports() == 4


def test_one_license_inventing_instances_is_limited_per_license(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every report from a new instanceId has an allowance of its own; the license's does not
    grow with them."""
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_LICENSE", "5")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    customer_id, token = customer
    try:
        statuses = [
            api_client.post(
                "/api/usage/report",
                json=usage_body(customer_id, instance=f"invented-{n}"),
                headers=bearer(token),
            )
            for n in range(8)
        ]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_counters()
    assert [answer.status_code for answer in statuses] == [202] * 5 + [429] * 3
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(statuses[-1].headers["retry-after"]) <= 3600
    assert count_reports() == 5
