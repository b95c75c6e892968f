"""What a verified license says: plan, status, features, limits, trial and expiry.

The claims are the service's: `customerId`, `customerName`, `plan`, `features{...}`,
`limits{...}`, `trial{isTrialMode, expiresAt}`, `subscription{status, currentPeriodEndsAt}`,
optionally `revocation{revoked, reason}`, plus the registered `iss`, `sub`, `iat`, `exp`, `jti`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# "Unlimited" as the service encodes it in features and limits (2**31 - 1): any real count is
# below it, so `count <= limit` never blocks.
UNLIMITED = 2_147_483_647
# Subscription statuses that give no right to run (the service issues such a license expiring
# at once, saying why). `past_due` is not one of them: it keeps its grace period.
ENDED_STATUSES = frozenset(
    {"canceled", "expired", "incomplete", "incomplete_expired", "unpaid", "paused"}
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _epoch_to_datetime(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _section(claims: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = claims.get(name)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class License:
    """A license whose signature and issuer were verified (expiry is judged separately)."""

    token: str
    claims: Mapping[str, Any]
    kid: str

    @property
    def customer_id(self) -> str:
        return str(self.claims.get("customerId") or self.claims["sub"])

    @property
    def customer_name(self) -> str | None:
        name = self.claims.get("customerName")
        return name if isinstance(name, str) else None

    @property
    def plan(self) -> str:
        return str(self.claims.get("plan") or "")

    @property
    def status(self) -> str:
        """The subscription status: trialing, active, past_due, canceled, expired, ..."""
        return str(_section(self.claims, "subscription").get("status") or "")

    @property
    def features(self) -> Mapping[str, Any]:
        return _section(self.claims, "features")

    @property
    def limits(self) -> Mapping[str, Any]:
        return _section(self.claims, "limits")

    @property
    def jti(self) -> str:
        return str(self.claims.get("jti") or "")

    @property
    def issued_at(self) -> datetime:
        value = _epoch_to_datetime(self.claims.get("iat"))
        assert value is not None  # verification requires a numeric iat
        return value

    @property
    def expires_at(self) -> datetime:
        value = _epoch_to_datetime(self.claims.get("exp"))
        assert value is not None  # verification requires a numeric exp
        return value

    @property
    def is_trial(self) -> bool:
        return _section(self.claims, "trial").get("isTrialMode") is True

    @property
    def trial_expires_at(self) -> datetime | None:
        return _parse_iso(_section(self.claims, "trial").get("expiresAt"))

    @property
    def current_period_ends_at(self) -> datetime | None:
        return _parse_iso(_section(self.claims, "subscription").get("currentPeriodEndsAt"))

    @property
    def revoked(self) -> bool:
        return _section(self.claims, "revocation").get("revoked") is True

    @property
    def revoked_reason(self) -> str | None:
        reason = _section(self.claims, "revocation").get("reason")
        return reason if isinstance(reason, str) else None

    @property
    def ended(self) -> bool:
        """The license itself says the instance must stop (revoked, canceled, expired trial...)."""
        return self.revoked or self.status in ENDED_STATUSES

    @property
    def max_devices(self) -> int:
        value = self.features.get("maxDevices")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def unlimited_devices(self) -> bool:
        return self.max_devices >= UNLIMITED

    def allows_devices(self, count: int) -> bool:
        """Whether `count` devices are within the plan (always, when devices are unlimited)."""
        return self.unlimited_devices or count <= self.max_devices

    def has_feature(self, name: str) -> bool:
        """A boolean feature by claim name (`hasAdvancedAlerts`) or snake_case name."""
        return self.features.get(_camel(name)) is True

    def limit(self, name: str) -> int | None:
        """A numeric feature or limit (`maxUsers`, `data_retention_days`); None when unlimited
        or not stated."""
        key = _camel(name)
        value = self.limits.get(key, self.features.get(key))
        if isinstance(value, bool) or not isinstance(value, int) or value >= UNLIMITED:
            return None
        return value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (times as ISO 8601 UTC)."""
        return {
            "customerId": self.customer_id,
            "customerName": self.customer_name,
            "plan": self.plan,
            "status": self.status,
            "features": dict(self.features),
            "limits": dict(self.limits),
            "trial": {"isTrialMode": self.is_trial, "expiresAt": _iso(self.trial_expires_at)},
            "currentPeriodEndsAt": _iso(self.current_period_ends_at),
            "revoked": self.revoked,
            "issuedAt": _iso(self.issued_at),
            "expiresAt": _iso(self.expires_at),
            "jti": self.jti,
            "kid": self.kid,
        }
