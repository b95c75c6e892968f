"""Check-in: present the newest license, get the customer's current one, keep it.

`GET /api/licenses/current` with the license as Bearer answers the customer's current license
(an expired but unrevoked license may check in, to fetch its renewal); a revoked license gets
401 "license has been revoked" with the customer's current license, signed, saying so. Each
outcome is told apart: current, revoked (only on that signed license), refused (forged, unknown
to the service, an answer that does not verify, or a revocation nothing signed) and unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from zemfyre_license.errors import LicenseError, ServiceUnreachableError
from zemfyre_license.keeper import LicenseKeeper
from zemfyre_license.license import License
from zemfyre_license.protocol import CHECK_IN_PATH, bearer, error_answer, json_object
from zemfyre_license.retry import Sender
from zemfyre_license.verdict import Verdict


class Outcome(StrEnum):
    CURRENT = "current"
    REVOKED = "revoked"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class CheckIn:
    """What check-in found, and the verdict with the license the instance now holds."""

    outcome: Outcome
    verdict: Verdict
    changed: bool = False
    message: str = ""

    @property
    def revoked(self) -> bool:
        return self.outcome is Outcome.REVOKED

    @property
    def unreachable(self) -> bool:
        return self.outcome is Outcome.UNREACHABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "changed": self.changed,
            "message": self.message,
            **self.verdict.to_dict(),
        }


def check_in(keeper: LicenseKeeper, sender: Sender) -> CheckIn:
    held = keeper.presentable()
    if held is None:
        reason = keeper.last_error or "no license to check in with"
        return CheckIn(Outcome.REFUSED, keeper.verdict(), message=reason)
    try:
        response = sender.request("GET", CHECK_IN_PATH, headers=bearer(held.token))
    except ServiceUnreachableError as exc:
        return CheckIn(Outcome.UNREACHABLE, keeper.verdict(), message=exc.reason)
    if response.status_code == 200:
        return _accept(keeper, held, response)
    return _refusal(keeper, held, response)


def _refusal(keeper: LicenseKeeper, held: License, response: httpx.Response) -> CheckIn:
    answer = error_answer(response)
    if answer.is_revocation:
        unproven = keeper.take_signed_revocation(json_object(response).get("license"))
        if unproven is None:
            return CheckIn(Outcome.REVOKED, keeper.verdict(), message=answer.message)
        message = (
            f"the service refused the license as revoked, but {unproven}: not taken as a revocation"
        )
        return CheckIn(Outcome.REFUSED, keeper.verdict(), message=message)
    message = f"the service answered {answer.status}: {answer.message}"
    return CheckIn(Outcome.REFUSED, keeper.verdict(), message=message)


def _accept(keeper: LicenseKeeper, held: License, response: httpx.Response) -> CheckIn:
    token = json_object(response).get("license")
    try:
        if not isinstance(token, str):
            raise LicenseError("the answer holds no license")
        current = keeper.adopt(token)
    except LicenseError as exc:
        message = f"the service's answer was not kept: {exc.reason}"
        return CheckIn(Outcome.REFUSED, keeper.verdict(), message=message)
    keeper.record_check_in(current)
    changed = current.jti != held.jti
    message = "a newer license was received" if changed else "the license is current"
    return CheckIn(Outcome.CURRENT, keeper.verdict(), changed=changed, message=message)
