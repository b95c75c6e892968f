"""core.licensing.service: content per plan, reissue only on change, expiry rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select, update

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.keys import load_signing_key
from core.licensing.service import current_license, reissue_license, renew_license
from core.plans import UNLIMITED
from core.settings import get_settings
from models import Customer, Subscription
from tests.conftest import pg_scalar

# The README's plan table, written out independently of core/plans.py.
PLAN_TABLE = {
    "trial": (5, 14, False, False),
    "starter": (10, 30, False, False),
    "professional": (50, 365, True, False),
    "enterprise": (UNLIMITED, None, True, True),
}


def _decode(token: str, *, verify_exp: bool = True) -> dict:
    public_pem = load_signing_key(get_settings()).public_pem
    return jwt.decode(token, public_pem, algorithms=["RS256"], options={"verify_exp": verify_exp})


def _new(email: str = "c@acme.example", **kwargs: object) -> str:
    with session_scope() as session:
        return create_customer(session, email=email, **kwargs).customer_id  # type: ignore[arg-type]


def _set_subscription(customer_id: str, **values: object) -> None:
    with session_scope() as session:
        session.execute(
            update(Subscription).where(Subscription.customer_id == customer_id).values(**values)
        )


def _current_claims(customer_id: str, *, verify_exp: bool = True) -> dict:
    with session_scope() as session:
        row = current_license(session, customer_id)
        assert row is not None
        return _decode(row.token, verify_exp=verify_exp)


@pytest.mark.parametrize("plan", list(PLAN_TABLE))
def test_features_and_limits_per_plan_match_the_table(plan: str) -> None:
    cid = _new(plan=plan)
    _set_subscription(
        cid, status="active", current_period_ends_at=datetime.now(UTC) + timedelta(days=30)
    )
    with session_scope() as session:
        reissue_license(session, cid, reason="test")
    claims = _current_claims(cid)
    devices, retention, alerts, branding = PLAN_TABLE[plan]
    features = claims["features"]
    assert claims["plan"] == plan
    assert features["maxDevices"] == devices
    if retention is not None:
        assert features["dataRetentionDays"] == retention
    assert features["hasAdvancedAlerts"] is alerts
    assert features["hasCustomBranding"] is branding
    assert features["canExportData"] and features["hasApiAccess"] and features["hasMqttAccess"]
    assert claims["trial"]["isTrialMode"] is False


def test_enterprise_overrides_reach_the_license() -> None:
    cid = _new(plan="enterprise")
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == cid)
            .values(plan_overrides={"features": {"maxDevices": 500}, "limits": {"maxUsers": 25}})
        )
    with session_scope() as session:
        assert reissue_license(session, cid, reason="overrides") is not None
    claims = _current_claims(cid)
    assert claims["features"]["maxDevices"] == 500 and claims["limits"]["maxUsers"] == 25


def test_reissue_only_when_what_the_license_says_changes() -> None:
    cid = _new()
    with session_scope() as session:
        assert reissue_license(session, cid, reason="nothing changed") is None
    _set_subscription(cid, plan="starter")
    with session_scope() as session:
        row = reissue_license(session, cid, reason="plan changed")
        assert row is not None and row.plan == "starter"
    with session_scope() as session:
        assert reissue_license(session, cid, reason="again") is None
        assert reissue_license(session, cid, reason="forced", force=True) is not None
    # The audit trail keeps every license; exactly one is current.
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{cid}'") == 3
    current = f"SELECT count(*) FROM licenses WHERE customer_id = '{cid}' AND superseded_at IS NULL"
    assert pg_scalar(current) == 1


def test_paid_license_ends_at_period_end_plus_grace_capped_at_365_days() -> None:
    cid = _new()
    period_end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    _set_subscription(cid, plan="starter", status="active", current_period_ends_at=period_end)
    with session_scope() as session:
        reissue_license(session, cid, reason="paid")
    claims = _current_claims(cid)
    assert claims["exp"] == int((period_end + timedelta(days=7)).timestamp())
    assert claims["subscription"]["status"] == "active"

    _set_subscription(cid, current_period_ends_at=period_end + timedelta(days=800))
    with session_scope() as session:
        reissue_license(session, cid, reason="long period")
    claims = _current_claims(cid)
    assert claims["exp"] - claims["iat"] == 365 * 86400


def test_trial_license_ends_with_the_trial() -> None:
    cid = _new()
    with session_scope() as session:
        trial_end = session.scalars(select(Subscription.trial_ends_at)).one()
    claims = _current_claims(cid)
    assert claims["exp"] == int(trial_end.timestamp())
    assert claims["trial"]["expiresAt"] == trial_end.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_renewal_skips_a_license_whose_expiry_would_not_move() -> None:
    cid = _new()
    with session_scope() as session:
        assert renew_license(session, cid) is None  # a trial's end is fixed
