"""Beat's trial expiry, run by a real worker: trials past their end flip, licenses say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import update

from core.billing import trials
from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.service import current_license
from models import Subscription
from tasks.billing import expire_trials
from tests.conftest import pg_scalar


def _customer(email: str) -> str:
    with session_scope() as session:
        return create_customer(session, email=email).customer_id


def _claims(customer_id: str) -> dict:
    with session_scope() as session:
        row = current_license(session, customer_id)
        assert row is not None
        return jwt.decode(row.token, options={"verify_signature": False})


def test_trial_ends_after_14_days_not_before() -> None:
    cid = _customer("days@acme.example")
    now = datetime.now(UTC)
    with session_scope() as session:
        assert trials.expire_trials(session, now=now + timedelta(days=13, hours=23)) == []
    with session_scope() as session:
        assert trials.expire_trials(session, now=now + timedelta(days=14, seconds=1)) == [cid]
    assert pg_scalar(f"SELECT status FROM subscriptions WHERE customer_id = '{cid}'") == "expired"


def test_beat_job_flips_expired_trials_and_reissues_their_licenses(celery_worker) -> None:
    lapsed = _customer("lapsed@acme.example")
    running = _customer("running@acme.example")
    stripe_managed = _customer("stripe@acme.example")
    past = datetime.now(UTC) - timedelta(minutes=1)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id.in_([lapsed, stripe_managed]))
            .values(trial_ends_at=past)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == stripe_managed)
            # A Stripe trial of a paid plan: Stripe ends it (and bills), not our beat job.
            .values(stripe_subscription_id="sub_123", plan="professional")
        )
    before = _claims(lapsed)

    result = expire_trials.delay().get(timeout=60)
    assert result["expired"] == [lapsed]

    assert (
        pg_scalar(f"SELECT status FROM subscriptions WHERE customer_id = '{lapsed}'") == "expired"
    )
    assert pg_scalar(f"SELECT status FROM subscriptions WHERE customer_id = '{running}'") == (
        "trialing"
    )
    # Stripe owns the trial of a Stripe subscription; its webhooks end it.
    stripe_status = pg_scalar(
        f"SELECT status FROM subscriptions WHERE customer_id = '{stripe_managed}'"
    )
    assert stripe_status == "trialing"

    after = _claims(lapsed)
    assert after["jti"] != before["jti"]
    assert after["subscription"]["status"] == "expired"
    assert after["trial"]["isTrialMode"] is True
    assert after["exp"] <= after["iat"] + 1

    # Safe to run twice: nothing more expires, no license is issued.
    licenses = pg_scalar("SELECT count(*) FROM licenses")
    assert expire_trials.delay().get(timeout=60)["expired"] == []
    assert pg_scalar("SELECT count(*) FROM licenses") == licenses
