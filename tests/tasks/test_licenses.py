"""License tasks on a real worker: reissue on change, renewal, rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import update

import tasks.licenses
from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.keys import rotate_keys
from core.licensing.revocation import revoke_license
from core.licensing.service import current_license, reissue_license
from models import License, Subscription
from tests.conftest import pg_scalar

TIMEOUT = 60


def _customer(email: str, **subscription: object) -> str:
    with session_scope() as session:
        cid = create_customer(session, email=email).customer_id
    if subscription:
        with session_scope() as session:
            session.execute(
                update(Subscription).where(Subscription.customer_id == cid).values(**subscription)
            )
            reissue_license(session, cid, reason="test set-up")
    return cid


def _current(customer_id: str) -> License:
    with session_scope() as session:
        row = current_license(session, customer_id)
        assert row is not None
        return row


def test_reissue_task_reissues_only_on_change(celery_worker) -> None:
    cid = _customer("task@acme.example")
    task = tasks.licenses.reissue_license
    assert task.delay(cid, "no change").get(timeout=TIMEOUT)["reissued"] is False
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == cid)
            .values(plan="professional", status="active", trial_ends_at=None)
        )
    first = task.delay(cid, "upgraded").get(timeout=TIMEOUT)
    assert first["reissued"] is True
    assert _current(cid).plan == "professional"
    assert task.delay(cid, "duplicate").get(timeout=TIMEOUT)["reissued"] is False
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{cid}'") == 2
    # A customer deleted after the task was queued is skipped, not retried forever.
    assert task.delay("cust_gone", "late").get(timeout=TIMEOUT)["reissued"] is False


def test_renewal_reissues_only_what_is_close_to_expiry(celery_worker) -> None:
    now = datetime.now(UTC)
    period = {"status": "active", "plan": "starter", "current_period_ends_at": now + timedelta(30)}
    close = _customer("close@acme.example", **period)
    far = _customer("far@acme.example", **period)
    canceled = _customer("canceled@acme.example", **{**period, "status": "canceled"})
    trialing = _customer("trialing@acme.example")
    # Licenses issued long ago: two now expire within the renewal window.
    with session_scope() as session:
        session.execute(
            update(License)
            .where(License.customer_id.in_([close, canceled]), License.superseded_at.is_(None))
            .values(expires_at=now + timedelta(days=2))
        )
        # A trial that ends soon: its license ends with it, renewal must not re-sign it.
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == trialing)
            .values(trial_ends_at=now + timedelta(days=2))
        )
        reissue_license(session, trialing, reason="trial shortened")
    before = {cid: _current(cid).jti for cid in (close, far, canceled, trialing)}

    result = tasks.licenses.renew_licenses.delay().get(timeout=TIMEOUT)
    assert result["renewed"] == [close]
    renewed = _current(close)
    assert renewed.jti != before[close]
    # Renewed to the paid period's end plus the grace period.
    assert abs((renewed.expires_at - (now + timedelta(days=37))).total_seconds()) < 2
    for cid in (far, canceled, trialing):
        assert _current(cid).jti == before[cid]
    # Safe to run twice.
    assert tasks.licenses.renew_licenses.delay().get(timeout=TIMEOUT)["renewed"] == []


def test_renewal_never_resigns_a_trial_that_has_ended_but_still_says_trialing(
    celery_worker,
) -> None:
    # A deactivated customer back on the trial tier, whose trial ended long ago and whose row was
    # never flipped to expired: its license is expired, and renewing could only sign another
    # license that is expired at once, every hour.
    ended = datetime.now(UTC) - timedelta(days=20)
    stuck = _customer("stuck@acme.example", status="trialing", trial_ends_at=ended)
    with session_scope() as session:
        # Its license ended with the trial, long ago.
        session.execute(
            update(License)
            .where(License.customer_id == stuck, License.superseded_at.is_(None))
            .values(expires_at=ended)
        )
    before = _current(stuck)
    assert before.expires_at <= datetime.now(UTC)
    for _ in range(2):
        result = tasks.licenses.renew_licenses.delay().get(timeout=TIMEOUT)
        assert stuck not in result["renewed"]
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{stuck}'") == 2
    assert _current(stuck).jti == before.jti


def test_after_rotation_renewal_resigns_every_license_with_the_new_key(
    celery_worker, isolated_keys
) -> None:
    first = _customer("k1@acme.example")
    second = _customer("k2@acme.example", status="canceled")
    old_tokens = {cid: _current(cid).token for cid in (first, second)}
    new_kid = rotate_keys(isolated_keys)
    result = tasks.licenses.renew_licenses.delay().get(timeout=TIMEOUT)
    assert sorted(result["renewed"]) == sorted([first, second])
    for cid in (first, second):
        row = _current(cid)
        assert row.kid == new_kid == jwt.get_unverified_header(row.token)["kid"]
        assert row.token != old_tokens[cid]


def test_renewal_is_not_starved_by_more_unrenewable_candidates_than_its_limit(
    celery_worker,
) -> None:
    # Each of these sorts before the renewable license (earlier expiry) and renewal can never
    # re-sign it: a trial's end is fixed, a past_due license ends with what was paid plus grace,
    # a revoked or paused license ends as it is issued. More of them than the limit must not
    # keep the renewable customer from ever being renewed.
    now = datetime.now(UTC)
    paid = {"plan": "starter", "status": "active", "current_period_ends_at": now + timedelta(30)}
    past_due = {**paid, "status": "past_due", "paid_through_at": now - timedelta(days=2)}
    stuck = [
        _customer(f"trial{i}@acme.example", trial_ends_at=now + timedelta(days=2)) for i in range(2)
    ]
    stuck += [
        _customer(f"pastdue{i}@acme.example", **past_due, stripe_subscription_id=f"sub_pd{i}")
        for i in range(2)
    ]
    stuck += [
        _customer(f"paused{i}@acme.example", **paid, collection_paused=True) for i in range(2)
    ]
    for i in range(2):
        revoked = _customer(f"revoked{i}@acme.example", **paid)
        with session_scope() as session:
            revoke_license(session, revoked, reason="test")
        stuck.append(revoked)
    renewable = _customer("renewable@acme.example", **paid)
    with session_scope() as session:  # issued long ago: it now expires within the window
        session.execute(
            update(License)
            .where(License.customer_id == renewable, License.superseded_at.is_(None))
            .values(expires_at=now + timedelta(days=6))
        )
    latest = max(_current(cid).expires_at for cid in stuck)
    assert latest < now + timedelta(days=6)  # all sort first
    before = {cid: _current(cid).jti for cid in stuck}

    result = tasks.licenses.renew_licenses.delay(limit=3).get(timeout=TIMEOUT)
    assert result == {"candidates": 1, "renewed": [renewable]}
    assert abs((_current(renewable).expires_at - (now + timedelta(37))).total_seconds()) < 2
    assert {cid: _current(cid).jti for cid in stuck} == before
    again = tasks.licenses.renew_licenses.delay(limit=3).get(timeout=TIMEOUT)
    assert again == {"candidates": 0, "renewed": []}
