"""Parsing the two SEED report formats into one validated report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InvalidInputError
from core.usage.parsing import ReportInput, parse_report

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


@pytest.mark.parametrize("key", ["abc\x00def", "line\nbreak", "tab\there", "bell\x07"])
def test_an_idempotency_key_with_control_characters_is_refused(key: str) -> None:
    from core.errors import InvalidInputError
    from core.usage.parsing import check_idempotency_key

    with pytest.raises(InvalidInputError) as error:
        check_idempotency_key(key)
    assert error.value.field == "Idempotency-Key"
    assert check_idempotency_key("  report-2025-10-21  ") == "report-2025-10-21"
