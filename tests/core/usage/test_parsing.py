"""Parsing the two SEED report formats, the device limits and the viewer's summary arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InvalidInputError
from core.plans import UNLIMITED
from core.usage.limits import device_limit, threshold_level
from core.usage.parsing import ReportInput, parse_report
from core.usage.queries import build_summary, window_start

NOW = datetime(2025, 10, 21, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)


def _parse(body: object) -> ReportInput:
    return parse_report(body, now=NOW, max_skew=SKEW)


def test_both_seed_formats_give_the_same_report() -> None:
    camel = _parse(
        {
            "customerId": "cust_1",
            "instanceId": "us-east-1",
            "timestamp": "2025-10-21T10:00:00Z",
            "metrics": {"activeDevices": 23, "totalDevices": 30},
        }
    )
    snake = _parse(
        {
            "customer_id": "cust_1",
            "instance_id": "us-east-1",
            "timestamp": "2025-10-21T10:00:00+00:00",
            "active_devices": 23,
            "total_devices": 30,
        }
    )
    assert (
        camel
        == snake
        == ReportInput("cust_1", "us-east-1", 23, 30, datetime(2025, 10, 21, 10, tzinfo=UTC))
    )


def test_timestamp_defaults_to_now_and_offsets_become_utc() -> None:
    body = {"customer_id": "c", "instance_id": "i", "active_devices": 1, "total_devices": 1}
    assert _parse(body).reported_at == NOW
    body["timestamp"] = "2025-10-21T12:00:00+02:00"
    assert _parse(body).reported_at == datetime(2025, 10, 21, 10, tzinfo=UTC)
    # A small clock skew into the future is fine.
    body["timestamp"] = (NOW + timedelta(seconds=200)).isoformat()
    assert _parse(body).reported_at == NOW + timedelta(seconds=200)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"instanceId": "i", "metrics": {"activeDevices": 1, "totalDevices": 1}}, "customerId"),
        ({"customerId": "c", "metrics": {"activeDevices": 1, "totalDevices": 1}}, "instanceId"),
        ({"customerId": "c", "instanceId": "  ", "metrics": {}}, "instanceId"),
        ({"customerId": "c", "instanceId": "x" * 256, "metrics": {}}, "instanceId"),
        ({"customerId": "c", "instanceId": 5, "metrics": {}}, "instanceId"),
        ({"customerId": "c", "instanceId": "i", "metrics": "many"}, "metrics"),
        (
            {"customerId": "c", "instanceId": "i", "metrics": {"totalDevices": 1}},
            "metrics.activeDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": -1, "totalDevices": 1},
            },
            "metrics.activeDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": 1.5, "totalDevices": 2},
            },
            "metrics.activeDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": 1, "totalDevices": "2"},
            },
            "metrics.totalDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": True, "totalDevices": 2},
            },
            "metrics.activeDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": 1, "totalDevices": 2**31},
            },
            "metrics.totalDevices",
        ),
        (
            {
                "customerId": "c",
                "instanceId": "i",
                "metrics": {"activeDevices": 3, "totalDevices": 2},
            },
            "metrics.activeDevices",
        ),
        (
            {"customer_id": "c", "instance_id": "i", "active_devices": 3, "total_devices": 2},
            "active_devices",
        ),
        ({"customer_id": "c", "instance_id": "i", "active_devices": 1}, "total_devices"),
        (
            {
                "customer_id": "c",
                "instance_id": "i",
                "active_devices": 1,
                "total_devices": 1,
                "timestamp": "yesterday",
            },
            "timestamp",
        ),
        (
            {
                "customer_id": "c",
                "instance_id": "i",
                "active_devices": 1,
                "total_devices": 1,
                "timestamp": "2025-10-21T12:06:00Z",
            },
            "timestamp",
        ),
    ],
)
def test_invalid_reports_name_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _parse(body)
    assert caught.value.field == field


def test_device_limit_follows_plan_and_enterprise_overrides() -> None:
    assert device_limit("trial", None) == 5
    assert device_limit("starter", None) == 10
    assert device_limit("professional", {"features": {"maxDevices": 500}}) == 50
    assert device_limit("enterprise", None) is None  # unlimited
    assert device_limit("enterprise", {"features": {"maxDevices": 500}}) == 500
    assert device_limit("enterprise", {"features": {"maxDevices": UNLIMITED}}) is None
    assert device_limit(None, None) is None


def test_threshold_levels_use_exact_integer_percentages() -> None:
    assert threshold_level(7, 10) == 0
    assert threshold_level(8, 10) == 80
    assert threshold_level(39, 50) == 0
    assert threshold_level(40, 50) == 80
    assert threshold_level(50, 50) == 100
    assert threshold_level(75, 50) == 100
    assert threshold_level(10**6, None) == 0


def test_summary_matches_the_seed_example() -> None:
    # SEED: 7 reports averaging 39.4, peak 42, current 42/45, professional (50 devices).
    summary = build_summary(
        total_reports=7,
        avg_active=276 / 7,
        peak_active=42,
        current_active=42,
        current_total=45,
        instances=1,
        limit=50,
    )
    assert summary.avg_active == 39.4
    assert summary.remaining == 8
    assert summary.utilization == 84.0
    assert summary.warning is not None and "84.0% of device limit used" in summary.warning


def test_summary_for_unlimited_and_quiet_customers() -> None:
    unlimited = build_summary(
        total_reports=1,
        avg_active=10_000,
        peak_active=10_000,
        current_active=10_000,
        current_total=10_000,
        instances=1,
        limit=None,
    )
    assert (unlimited.remaining, unlimited.utilization, unlimited.warning) == (None, None, None)
    quiet = build_summary(
        total_reports=0,
        avg_active=None,
        peak_active=None,
        current_active=0,
        current_total=0,
        instances=0,
        limit=5,
    )
    assert (quiet.avg_active, quiet.remaining, quiet.utilization, quiet.warning) == (
        None,
        5,
        0.0,
        None,
    )
    over = build_summary(
        total_reports=1,
        avg_active=6,
        peak_active=6,
        current_active=6,
        current_total=6,
        instances=1,
        limit=5,
    )
    assert over.remaining == 0 and over.utilization == 120.0
    assert over.warning is not None and over.warning.startswith("OVER LIMIT")


def test_window_is_the_last_n_utc_days_today_included() -> None:
    assert window_start(1, NOW) == datetime(2025, 10, 21, tzinfo=UTC)
    assert window_start(7, NOW) == datetime(2025, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize("key", ["abc\x00def", "line\nbreak", "tab\there", "bell\x07"])
def test_an_idempotency_key_with_control_characters_is_refused(key: str) -> None:
    from core.errors import InvalidInputError
    from core.usage.parsing import check_idempotency_key

    with pytest.raises(InvalidInputError) as error:
        check_idempotency_key(key)
    assert error.value.field == "Idempotency-Key"
    assert check_idempotency_key("  report-2025-10-21  ") == "report-2025-10-21"
