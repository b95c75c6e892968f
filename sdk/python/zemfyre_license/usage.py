"""Usage reports (`LicenseClient.report_usage`): device counts sent with the license, stored
exactly once by the service.

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

from zemfyre_license.errors import LicenseError
from zemfyre_license.keeper import LicenseKeeper
from zemfyre_license.protocol import json_object

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


def check_counts(active: int, total: int) -> None:
    for name, value in (("active", active), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} device count must be a whole number >= 0, not {value!r}")
    if active > total:
        raise ValueError(f"active devices ({active}) cannot exceed total devices ({total})")


def receipt_of(keeper: LicenseKeeper, response: httpx.Response, key: str) -> UsageReceipt:
    body = json_object(response)
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
