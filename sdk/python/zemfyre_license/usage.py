"""Usage reports: device counts sent with the license, stored exactly once by the service.

Every report carries an `Idempotency-Key` derived from what identifies it (customer, instance,
timestamp), so the same report retried after a lost answer, or sent again after a restart, is
stored once (the service answers `duplicate: true`). A `202` answer may carry the customer's
newer license (`license`): it is verified and kept, as check-in would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from zemfyre_license.errors import LicenseError, LicenseRevokedError, ServiceRefusedError
from zemfyre_license.keeper import LicenseKeeper
from zemfyre_license.protocol import USAGE_REPORT_PATH, bearer, error_answer, json_object
from zemfyre_license.retry import Sender, parse_http_date

_KEY_NAMESPACE = uuid.UUID("4f9d8c2e-6b1a-5e3f-9a7d-2c8b1e0f5a64")


@dataclass(frozen=True, slots=True)
class UsageReceipt:
    report_id: int
    duplicate: bool
    idempotency_key: str
    license_updated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "accepted",
            "reportId": self.report_id,
            "duplicate": self.duplicate,
            "idempotencyKey": self.idempotency_key,
            "licenseUpdated": self.license_updated,
        }


def report_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def idempotency_key_for(customer_id: str, instance_id: str, timestamp: str) -> str:
    """The same key for the same report, whichever process or attempt sends it."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{customer_id}\n{instance_id}\n{timestamp}"))


def _check_counts(active: int, total: int) -> None:
    for name, value in (("active", active), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} device count must be a whole number >= 0, not {value!r}")
    if active > total:
        raise ValueError(f"active devices ({active}) cannot exceed total devices ({total})")


def report_usage(
    keeper: LicenseKeeper,
    sender: Sender,
    *,
    instance_id: str,
    active_devices: int,
    total_devices: int,
    timestamp: datetime | None = None,
    idempotency_key: str | None = None,
) -> UsageReceipt:
    """Send one report (retrying per the sender's policy); the receipt once it is stored.

    Raises LicenseRevokedError, ServiceRefusedError (401/403/409/422...) or
    ServiceUnreachableError.
    """
    _check_counts(active_devices, total_devices)
    license = keeper.newest()
    if license is None:
        raise LicenseError(keeper.last_error or "no license to report usage with")
    when = report_timestamp(timestamp or keeper.now())
    key = idempotency_key or idempotency_key_for(license.customer_id, instance_id, when)
    body = {
        "customerId": license.customer_id,
        "instanceId": instance_id,
        "timestamp": when,
        "metrics": {"activeDevices": active_devices, "totalDevices": total_devices},
    }
    headers = {**bearer(license.token), "Idempotency-Key": key}
    response = sender.request("POST", USAGE_REPORT_PATH, headers=headers, json=body)
    if response.status_code == 202:
        return _receipt(keeper, response, key)
    answer = error_answer(response)
    if answer.is_revocation:
        keeper.mark_revoked(license)
        raise LicenseRevokedError(answer.message)
    raise ServiceRefusedError(answer.status, answer.message, code=answer.code, field=answer.field)


def _receipt(keeper: LicenseKeeper, response: httpx.Response, key: str) -> UsageReceipt:
    body = json_object(response)
    keeper.observe_time(parse_http_date(response.headers.get("Date")))
    newer = body.get("license")
    updated = False
    if isinstance(newer, str):
        try:
            keeper.adopt(newer)
            updated = True
        except LicenseError:
            pass  # the report is stored all the same; the next check-in fetches the license
    report_id = body.get("reportId")
    return UsageReceipt(
        report_id=report_id if isinstance(report_id, int) else -1,
        duplicate=body.get("duplicate") is True,
        idempotency_key=key,
        license_updated=updated,
    )
