"""A license's content (core.licensing.tokens.LicenseContent) and when a license made of it expires
(license_expiry): trials, paid periods plus grace, the cap, ended subscriptions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.licensing.tokens import LicenseContent, license_expiry
from core.plans import Plan
from tests.core.licensing.conftest import NOW, PERIOD_END, make_content


def test_content_requires_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_content(current_period_ends_at=datetime(2025, 11, 21))
    with pytest.raises(ValueError, match="timezone"):
        make_content(is_trial=True, trial_ends_at=datetime(2025, 11, 4))


def test_content_accepts_a_plan_name_but_not_an_unknown_plan() -> None:
    assert make_content(plan="starter").plan is Plan.STARTER
    with pytest.raises(ValueError):
        make_content(plan="gold")


def expiry(content: LicenseContent, now: datetime = NOW) -> datetime:
    return license_expiry(content, now, grace_days=7, max_days=365)


def test_trial_ends_with_the_trial_without_grace() -> None:
    trial_end = NOW + timedelta(days=14)
    content = make_content(
        plan=Plan.TRIAL, is_trial=True, trial_ends_at=trial_end, subscription_status="trialing"
    )
    assert expiry(content) == trial_end


def test_trial_of_a_paid_plan_also_ends_with_the_trial() -> None:
    trial_end = NOW + timedelta(days=14)
    content = make_content(
        is_trial=True,
        trial_ends_at=trial_end,
        subscription_status="trialing",
        current_period_ends_at=trial_end,
    )
    assert expiry(content) == trial_end


def test_paid_ends_after_the_period_plus_grace() -> None:
    assert expiry(make_content()) == PERIOD_END + timedelta(days=7)
    assert expiry(make_content(subscription_status="past_due")) == PERIOD_END + timedelta(days=7)
    assert license_expiry(make_content(), NOW, grace_days=0, max_days=365) == PERIOD_END


def test_expiry_is_capped_at_max_days() -> None:
    far = make_content(current_period_ends_at=NOW + timedelta(days=800))
    assert expiry(far) == NOW + timedelta(days=365)
    assert license_expiry(make_content(), NOW, grace_days=7, max_days=10) == NOW + timedelta(
        days=10
    )
    long_trial = make_content(is_trial=True, trial_ends_at=NOW + timedelta(days=900))
    assert expiry(long_trial) == NOW + timedelta(days=365)


def test_paid_without_a_period_end_gets_max_days() -> None:
    assert expiry(make_content(current_period_ends_at=None)) == NOW + timedelta(days=365)


@pytest.mark.parametrize(
    "changes",
    [
        {"subscription_status": "canceled"},
        {"subscription_status": "expired"},
        {"subscription_status": "incomplete"},
        {"subscription_status": "unpaid"},
        {"subscription_status": "paused"},
        {"plan": Plan.TRIAL, "is_trial": True, "trial_ends_at": NOW + timedelta(days=3),
         "subscription_status": "expired"},
        {"revoked": True, "revoked_reason": "chargeback"},
    ],
)  # fmt: skip
def test_ended_content_expires_now(changes: dict) -> None:
    assert expiry(make_content(**changes)) == NOW


def test_a_past_end_never_expires_before_issue() -> None:
    lapsed = make_content(current_period_ends_at=NOW - timedelta(days=30))
    assert expiry(lapsed) == NOW
    ended_trial = make_content(is_trial=True, trial_ends_at=NOW - timedelta(days=1))
    assert expiry(ended_trial) == NOW


def test_expiry_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        license_expiry(make_content(), datetime(2025, 10, 21), grace_days=7, max_days=365)
