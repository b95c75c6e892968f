"""Usage reports as instances send them: the two body formats (nested, flat) into one shape.

The body is decoded once (`parse_report_body`); every refusal is an InvalidInputError naming the
field, so the API answers 422 and never 500, whatever the body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInputError
from core.settings import get_settings

# Largest value an INTEGER column holds: the most USAGE_MAX_DEVICES may allow.
MAX_COUNT = 2_147_483_647
MAX_INSTANCE_ID_LENGTH = 255
MAX_CUSTOMER_ID_LENGTH = 64
MAX_IDEMPOTENCY_KEY_LENGTH = 255


# ---------------------------------------------------------------------------------------------
# Parsing: the two body formats into one shape


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class ReportInput:
    customer_id: str
    instance_id: str
    active_devices: int
    total_devices: int
    reported_at: datetime
    # False when the body had no timestamp and `reported_at` is the time it arrived.
    timed: bool = True


def _pick(body: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """The first of `names` present in `body` (and its name), else the first name and None."""
    for name in names:
        if name in body and body[name] is not None:
            return name, body[name]
    return names[0], None


def _identifier(body: Mapping[str, Any], names: tuple[str, ...], max_length: int) -> str:
    field, value = _pick(body, *names)
    if value is None:
        raise InvalidInputError(f"{field} is required", field=field)
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string", field=field)
    value = value.strip()
    if not value:
        raise InvalidInputError(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInputError(f"{field} must be at most {max_length} characters", field=field)
    if not value.isprintable():
        raise InvalidInputError(f"{field} must not contain control characters", field=field)
    return value


def _count(value: Any, field: str) -> int:
    if value is None:
        raise InvalidInputError(f"{field} is required", field=field)
    # bool is an int subclass, and 5.5 devices is a bug in the instance: refuse both.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be a whole number", field=field)
    if value < 0:
        raise InvalidInputError(f"{field} must not be negative", field=field)
    most = get_settings().usage_max_devices  # at most MAX_COUNT (the settings check it)
    if value > most:
        raise InvalidInputError(f"{field} must be at most {most} (USAGE_MAX_DEVICES)", field=field)
    return value


def _timestamp(value: Any, field: str, *, now: datetime, max_skew: timedelta) -> datetime:
    if value is None:
        return now
    if isinstance(value, bool):
        raise InvalidInputError(f"{field} must be an ISO 8601 timestamp", field=field)
    try:
        if isinstance(value, int | float):
            # Epoch seconds, as JavaScript's Date.now() / 1000 would send.
            parsed = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        else:
            raise TypeError(value)
        # Instances send UTC ("...Z"); a timestamp without an offset is read as UTC too. Inside
        # the try: an offset at the edge of the calendar (year 1 or 9999) overflows here.
        if parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=UTC)
        else:
            parsed = parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidInputError(
            f"{field} must be an ISO 8601 timestamp such as 2025-10-21T10:00:00Z", field=field
        ) from None
    if parsed > now + max_skew:
        raise InvalidInputError(f"{field} is in the future", field=field)
    if parsed.year < 2000:
        raise InvalidInputError(f"{field} is too far in the past", field=field)
    return parsed


def parse_report_body(raw: bytes, *, now: datetime, max_skew: timedelta) -> ReportInput:
    """`parse_report` of a raw request body: the one place the report's JSON is decoded."""
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        # RecursionError: thousands of nested brackets are hostile input, not a server error.
        raise InvalidInputError("the body must be a JSON object", field="body") from None
    return parse_report(body, now=now, max_skew=max_skew)


def parse_report(body: Any, *, now: datetime, max_skew: timedelta) -> ReportInput:
    """A validated report from either body format, or InvalidInputError naming the field.

    `{customerId, instanceId, timestamp, metrics: {activeDevices, totalDevices}}` and
    `{customer_id, instance_id, active_devices, total_devices}` (with an optional `timestamp`)
    give the same ReportInput. The timestamp defaults to `now`.
    """
    if not isinstance(body, Mapping):
        raise InvalidInputError("the body must be a JSON object", field="body")
    customer_id = _identifier(body, ("customerId", "customer_id"), MAX_CUSTOMER_ID_LENGTH)
    instance_id = _identifier(body, ("instanceId", "instance_id"), MAX_INSTANCE_ID_LENGTH)

    metrics = body.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise InvalidInputError("metrics must be an object", field="metrics")
        active_name, active = _pick(metrics, "activeDevices", "active_devices")
        total_name, total = _pick(metrics, "totalDevices", "total_devices")
        active_field, total_field = f"metrics.{active_name}", f"metrics.{total_name}"
    else:
        active_field, active = _pick(body, "active_devices", "activeDevices")
        total_field, total = _pick(body, "total_devices", "totalDevices")
    active_devices = _count(active, active_field)
    total_devices = _count(total, total_field)
    if active_devices > total_devices:
        raise InvalidInputError(
            f"{active_field} ({active_devices}) must not exceed {total_field} ({total_devices})",
            field=active_field,
        )

    ts_field, ts_value = _pick(body, "timestamp", "reported_at", "reportedAt")
    reported_at = _timestamp(ts_value, ts_field, now=now, max_skew=max_skew)
    return ReportInput(
        customer_id, instance_id, active_devices, total_devices, reported_at, ts_value is not None
    )


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidInputError("Idempotency-Key must not be empty", field="Idempotency-Key")
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInputError(
            f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            field="Idempotency-Key",
        )
    if not value.isprintable():
        raise InvalidInputError(
            "Idempotency-Key must not contain control characters", field="Idempotency-Key"
        )
    return value


def idempotency_key_for(report: ReportInput, header: str | None, now: datetime) -> str | None:
    """The key a report is deduplicated by: the client's Idempotency-Key, else for a report
    without timestamp one derived from what it says.

    A timed report is deduplicated by (instance, timestamp). An untimed one is stamped with its
    arrival time, so a client's retry after a dropped connection would be a second report: the
    same instance sending the same numbers within one USAGE_UNTIMED_DEDUP_SECONDS window (of the
    clock, not sliding) is taken as that retry. Two genuinely identical reports in one window
    then count once, which changes no peak and no current figure.
    """
    key = check_idempotency_key(header)
    window = get_settings().usage_untimed_dedup_seconds
    if key is not None or report.timed or window <= 0:
        return key
    bucket = int(now.timestamp()) // window
    said = f"{report.instance_id}\x1f{report.active_devices}\x1f{report.total_devices}"
    return f"untimed:{bucket}:{hashlib.sha256(said.encode()).hexdigest()[:40]}"
