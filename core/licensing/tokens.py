"""License logic without storage: what a license says, when it ends, signing and verifying it.

The DB-backed license service gathers a `LicenseContent` for a customer, compares its
`content_fingerprint` (and the active kid) with the current license's, and only when they differ
calls `license_expiry`, `build_claims` and `sign_license` to issue a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.billing.metering.meters import overage_billed
from core.billing.statuses import NOT_ENTITLED, REVOKED_LICENSE_STATUS
from core.licensing.keys import SigningKey
from core.plans import Plan, PlanFeatures, PlanLimits

ALGORITHM = "RS256"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub"]
# What a revoked license says about why (the same for every revocation, see _content_claims).
SIGNED_REVOCATION_REASON = "revoked"


class InvalidLicenseError(Exception):
    """A license token that must not be trusted; `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKeyError(InvalidLicenseError):
    """Signed with a key id that is not published (yet: a rotation may be under way)."""


@dataclass(frozen=True, slots=True)
class LicenseContent:
    """Everything a license says about a customer, apart from when and by whom it was issued."""

    customer_id: str
    customer_name: str
    plan: Plan
    features: PlanFeatures
    limits: PlanLimits
    is_trial: bool
    trial_ends_at: datetime | None
    # trialing, active, past_due, unpaid, canceled, expired, ...
    subscription_status: str
    current_period_ends_at: datetime | None
    revoked: bool = False
    revoked_reason: str | None = None
    # Set to cancel when the paid period ends: no renewal follows, so no grace runs past it.
    ends_with_period: bool = False

    def __post_init__(self) -> None:
        # A naive datetime would be read as local time somewhere and shift every expiry.
        for name in ("trial_ends_at", "current_period_ends_at"):
            _require_aware(getattr(self, name), name)
        # Accept "professional" as well as Plan.PROFESSIONAL, but never an unknown plan.
        object.__setattr__(self, "plan", Plan(self.plan))

    @property
    def has_ended(self) -> bool:
        return self.revoked or self.subscription_status in NOT_ENTITLED


def _require_aware(value: datetime | None, name: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a "Z", to the second, as instances read it ("2025-11-21T00:00:00Z")."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


# ---------------------------------------------------------------------------------------------
# What a license says and when it ends


def license_expiry(
    content: LicenseContent, now: datetime, *, grace_days: int, max_days: int
) -> datetime:
    """When a license issued at `now` for `content` stops being valid.

    - ended (canceled, expired, revoked): `now`; the license says so and an instance refuses it.
    - trial: when the trial ends (no grace: the trial is the free period).
    - paid: the end of the paid period plus `grace_days`, to ride out a late renewal or webhook.
    Never later than `max_days` from now (a long period or a missing date still gets renewed),
    and never before `now`, so `exp` is never earlier than `iat`.
    """
    _require_aware(now, "now")
    if content.has_ended:
        return now
    cap = now + timedelta(days=max_days)
    if content.is_trial:
        end = content.trial_ends_at or cap
    elif content.current_period_ends_at is not None:
        end = content.current_period_ends_at + timedelta(days=grace_days)
    else:
        end = cap
    return max(now, min(end, cap))


def _content_claims(content: LicenseContent) -> dict[str, Any]:
    """The part of the claims that depends only on the content (shared with the fingerprint)."""
    claims: dict[str, Any] = {
        "customerId": content.customer_id,
        "customerName": content.customer_name,
        "plan": content.plan.value,
        "features": content.features.to_claims(),
        "limits": content.limits.to_claims(),
        "trial": {
            "isTrialMode": content.is_trial,
            "expiresAt": _iso(content.trial_ends_at) if content.is_trial else None,
        },
        "subscription": {
            "status": REVOKED_LICENSE_STATUS if content.revoked else content.subscription_status,
            "currentPeriodEndsAt": _iso(content.current_period_ends_at),
        },
        # "soft": devices above features.maxDevices keep working and are billed per device-day
        # (Stripe meter); "hard": the instance refuses them (trials, unpaid, enterprise terms).
        "deviceLimit": "soft"
        if not content.revoked
        and overage_billed(content.plan, content.subscription_status, is_trial=content.is_trial)
        else "hard",
    }
    if content.ends_with_period:
        # Only when set, so the licenses of subscriptions that renew keep their fingerprints.
        claims["subscription"]["cancelAtPeriodEnd"] = True
    if content.revoked:
        # A fixed word, never the operator's note: the revoked license is handed to anyone
        # presenting any genuine token of the customer (expired, superseded, leaked). The note
        # stays in customers/licenses (revoked_reason) and the audit log.
        claims["revocation"] = {"revoked": True, "reason": SIGNED_REVOCATION_REASON}
    return claims


def build_claims(
    content: LicenseContent,
    *,
    issued_at: datetime,
    expires_at: datetime,
    jti: str,
    issuer: str,
) -> dict[str, Any]:
    """The license's claims as instances read them, plus the registered claims JWTs carry."""
    return _timed_claims(
        _content_claims(content), issued_at=issued_at, expires_at=expires_at, jti=jti, issuer=issuer
    )


def _timed_claims(
    claims: dict[str, Any], *, issued_at: datetime, expires_at: datetime, jti: str, issuer: str
) -> dict[str, Any]:
    """Content claims plus the times, jti and registered claims; fills in `claims` itself."""
    _require_aware(issued_at, "issued_at")
    _require_aware(expires_at, "expires_at")
    iat, exp = _epoch(issued_at), _epoch(expires_at)
    claims["issuedAt"] = iat
    claims["expiresAt"] = exp
    claims.update(iss=issuer, sub=claims["customerId"], iat=iat, exp=exp, jti=jti)
    return claims


def new_jti() -> str:
    return uuid.uuid4().hex


def content_fingerprint(content: LicenseContent) -> str:
    """SHA-256 (hex) of what a license for `content` says, without issue time, jti or expiry.

    Built from the same claims a license carries, so it changes exactly when the license would
    read differently (a field that is not said, like the reason of an unrevoked license, or
    sub-second precision, does not count). The key (kid) is not part of it: compare that too.
    """
    return _fingerprint_of(_content_claims(content))


def _fingerprint_of(content_claims: dict[str, Any]) -> str:
    canonical = json.dumps(
        content_claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Signing and verifying

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@lru_cache(maxsize=64)
def _header_segment(kid: str) -> bytes:
    # The header only depends on the kid: encode it once per key, not once per license.
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    return _b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))


def sign_license(claims: dict[str, Any], key: SigningKey) -> str:
    """A compact RS256 JWS of `claims` with the key's kid in the header.

    Done by hand rather than through jwt.encode: the RSA signature is the only real work, and
    everything else (header encoding, key checks) is either cached or skipped.
    """
    if "exp" not in claims:
        # A license without an expiry would be valid forever.
        raise ValueError("license claims must have an 'exp'")
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    signing_input = _header_segment(key.kid) + b"." + payload
    signature = key.private_key.sign(signing_input, _PKCS1V15, _SHA256)
    return (signing_input + b"." + _b64url(signature)).decode("ascii")


def verify_license(
    token: str,
    public_keys: dict[str, rsa.RSAPublicKey],
    *,
    issuer: str,
    verify_exp: bool = True,
) -> dict[str, Any]:
    """The claims of a genuine license, or InvalidLicenseError saying why it is not one.

    Only RS256 with a known kid is accepted: the header's algorithm is never trusted to pick how
    to check the signature (which is what alg "none" and HS256-with-the-public-key attacks rely
    on), and the key comes from our own key set by kid, never from the token.
    """
    if not isinstance(token, str) or not token:
        raise InvalidLicenseError("license is empty")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidLicenseError("license is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise InvalidLicenseError(f"license algorithm {alg!r} is not allowed (only RS256)")
    kid = header.get("kid")
    if not kid or not isinstance(kid, str):
        raise InvalidLicenseError("license has no key id (kid)")
    public_key = public_keys.get(kid)
    if public_key is None:
        raise UnknownKeyError(f"license is signed with an unknown key ({kid})")
    try:
        return jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"verify_exp": verify_exp, "require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidLicenseError("license has expired") from None
    except jwt.InvalidSignatureError:
        raise InvalidLicenseError("license signature is invalid") from None
    except jwt.InvalidIssuerError:
        raise InvalidLicenseError("license was issued by someone else (wrong issuer)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidLicenseError(f"license lacks the {exc.claim!r} claim") from None
    except jwt.ImmatureSignatureError:
        raise InvalidLicenseError("license is not valid yet") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidLicenseError(f"license is invalid: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Convenience for the license service


@dataclass(frozen=True, slots=True)
class IssuedLicense:
    token: str
    claims: dict[str, Any]
    jti: str
    kid: str
    fingerprint: str
    issued_at: datetime
    expires_at: datetime


def issue_license(
    content: LicenseContent,
    key: SigningKey,
    *,
    now: datetime,
    issuer: str,
    grace_days: int,
    max_days: int,
    jti: str | None = None,
) -> IssuedLicense:
    """Expiry, claims and signature in one call (settings give issuer, grace and max days)."""
    # Whole seconds, as in the claims, so the times stored beside the token match it exactly.
    now = now.replace(microsecond=0)
    expires_at = license_expiry(content, now, grace_days=grace_days, max_days=max_days)
    expires_at = expires_at.replace(microsecond=0)
    jti = jti or new_jti()
    # The content claims are built once and serve both the fingerprint and the license (the
    # fingerprint is taken first: the times are then added to the same dict).
    content_claims = _content_claims(content)
    fingerprint = _fingerprint_of(content_claims)
    claims = _timed_claims(
        content_claims, issued_at=now, expires_at=expires_at, jti=jti, issuer=issuer
    )
    return IssuedLicense(
        token=sign_license(claims, key),
        claims=claims,
        jti=jti,
        kid=key.kid,
        fingerprint=fingerprint,
        issued_at=now,
        expires_at=expires_at,
    )
