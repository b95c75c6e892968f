"""Whether a verified license lets the instance run now: status, expiry, grace and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zemfyre_license.license import License

# How long a license that expired keeps working while no renewal can be fetched.
DEFAULT_GRACE = timedelta(days=7)
# How far the clock may read behind the latest time the service vouched for before the instance
# treats it as set back (clocks drift; a set-back clock aims at days, not minutes).
DEFAULT_CLOCK_TOLERANCE = timedelta(minutes=15)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to "may this instance run?", with the license it is based on."""

    allowed: bool
    reason: str
    license: License | None = None
    in_grace: bool = False
    grace_ends_at: datetime | None = None
    revoked: bool = False
    clock_set_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "inGrace": self.in_grace,
            "graceEndsAt": _iso(self.grace_ends_at),
            "revoked": self.revoked,
            "clockSetBack": self.clock_set_back,
            "license": self.license.to_dict() if self.license else None,
            "token": self.license.token if self.license else None,
        }


def refused(reason: str, license: License | None = None) -> Verdict:
    return Verdict(allowed=False, reason=reason, license=license)


def revoked(license: License, reason: str | None = None) -> Verdict:
    detail = f": {reason}" if reason else ""
    return Verdict(False, f"license has been revoked{detail}", license, revoked=True)


def clock_set_back(license: License | None, now: datetime, trusted: datetime) -> Verdict:
    reason = (
        f"clock set back: the system clock reads {_iso(now)}, but the service was already "
        f"seen at {_iso(trusted)}"
    )
    return Verdict(False, reason, license, clock_set_back=True)


def _ended_reason(license: License) -> str:
    if license.is_trial and license.status == "expired":
        return "the trial has ended"
    return f"the subscription is {license.status}"


def evaluate(
    license: License,
    now: datetime,
    *,
    grace: timedelta = DEFAULT_GRACE,
    expiry_confirmed: bool = False,
) -> Verdict:
    """The verdict on `license` at `now` (an already checked, trusted time).

    An expired license keeps working for `grace` after its expiry (flagged `in_grace`), unless
    `expiry_confirmed`: the service was reached after the expiry and had no newer license.
    """
    if license.revoked:
        return revoked(license, license.revoked_reason)
    if license.ended:
        return refused(_ended_reason(license), license)
    expires = license.expires_at
    if now < expires:
        return Verdict(True, f"valid until {_iso(expires)}", license)
    if expiry_confirmed:
        return refused(
            f"license expired at {_iso(expires)} and the service has issued no renewal", license
        )
    grace_ends = expires + grace
    if now < grace_ends:
        reason = (
            f"license expired at {_iso(expires)}; running in grace until {_iso(grace_ends)} "
            "while no renewal can be fetched"
        )
        return Verdict(True, reason, license, in_grace=True, grace_ends_at=grace_ends)
    reason = f"license expired at {_iso(expires)} and its grace period ended at {_iso(grace_ends)}"
    return Verdict(False, reason, license, grace_ends_at=grace_ends)
