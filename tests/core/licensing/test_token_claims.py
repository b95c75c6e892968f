"""The claims a license says (core.licensing.tokens.build_claims): SEED's structure, trials,
revocation, enterprise overrides, times in UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from core.licensing.tokens import build_claims
from core.plans import Plan, get_plan, plan_for_features
from tests.core.licensing.conftest import ISSUER, NOW, make_content
from tests.core.test_plans import EXPECTED


def test_claims_have_exactly_the_seed_structure() -> None:
    issued_at = datetime.fromtimestamp(1729500000, UTC)
    expires_at = datetime.fromtimestamp(1761036000, UTC)
    claims = build_claims(
        make_content(), issued_at=issued_at, expires_at=expires_at, jti="abc", issuer=ISSUER
    )
    assert claims == {
        "customerId": "cust_abc123",
        "customerName": "Acme Corporation",
        "plan": "professional",
        # The README's plan table, written out once (tests/core/test_plans.py).
        "features": EXPECTED["professional"]["features"],
        "limits": EXPECTED["professional"]["limits"],
        "trial": {"isTrialMode": False, "expiresAt": None},
        "subscription": {"status": "active", "currentPeriodEndsAt": "2025-11-21T00:00:00Z"},
        "deviceLimit": "soft",
        "issuedAt": 1729500000,
        "expiresAt": 1761036000,
        "iss": ISSUER,
        "sub": "cust_abc123",
        "iat": 1729500000,
        "exp": 1761036000,
        "jti": "abc",
    }
    assert type(claims["plan"]) is str
    json.dumps(claims)


def test_trial_claims() -> None:
    trial_end = datetime(2025, 11, 4, 10, 0, 0, 123456, tzinfo=UTC)
    content = make_content(
        plan=Plan.TRIAL,
        features=get_plan("trial").features,
        limits=get_plan("trial").limits,
        is_trial=True,
        trial_ends_at=trial_end,
        subscription_status="trialing",
        current_period_ends_at=None,
    )
    claims = build_claims(content, issued_at=NOW, expires_at=trial_end, jti="j", issuer=ISSUER)
    assert claims["trial"] == {"isTrialMode": True, "expiresAt": "2025-11-04T10:00:00Z"}
    assert claims["subscription"] == {"status": "trialing", "currentPeriodEndsAt": None}
    assert claims["features"]["maxDevices"] == 5
    assert claims["exp"] == claims["expiresAt"] == int(trial_end.timestamp())
    assert claims["iat"] == claims["issuedAt"] == int(NOW.timestamp())


def test_non_utc_times_are_written_in_utc() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=2))
    content = make_content(current_period_ends_at=datetime(2025, 11, 21, 2, 0, tzinfo=paris))
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["subscription"]["currentPeriodEndsAt"] == "2025-11-21T00:00:00Z"


def test_revoked_claims_say_canceled_and_why() -> None:
    content = make_content(revoked=True, revoked_reason="chargeback")
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["subscription"]["status"] == "canceled"
    assert claims["revocation"] == {"revoked": True, "reason": "revoked"}  # not the note
    assert claims["exp"] == claims["iat"]
    assert "revocation" not in build_claims(
        make_content(), issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER
    )


def test_enterprise_overrides_reach_the_claims() -> None:
    spec = get_plan("enterprise")
    features, limits = plan_for_features(spec, {"features": {"maxDevices": 500}})
    content = make_content(plan=Plan.ENTERPRISE, features=features, limits=limits)
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["features"]["maxDevices"] == 500
    assert claims["limits"]["maxUsers"] == 2_147_483_647
