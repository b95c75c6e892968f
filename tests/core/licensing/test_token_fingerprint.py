"""The content fingerprint (content_fingerprint): equal for what says the same, different for
anything the license says differently."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from core.licensing.tokens import content_fingerprint
from core.plans import Plan, get_plan
from tests.core.licensing.conftest import PERIOD_END, make_content


def test_fingerprint_is_stable_for_equal_content() -> None:
    a, b = make_content(), make_content()
    assert a is not b
    assert content_fingerprint(a) == content_fingerprint(b)
    assert len(content_fingerprint(a)) == 64
    int(content_fingerprint(a), 16)
    # Sub-second noise is not part of what the license says.
    jittered = make_content(current_period_ends_at=PERIOD_END + timedelta(microseconds=5))
    assert content_fingerprint(jittered) == content_fingerprint(a)
    # Not said by an unrevoked license, so not part of it either.
    assert content_fingerprint(make_content(revoked_reason="stale")) == content_fingerprint(a)


@pytest.mark.parametrize(
    "changes",
    [
        {"plan": Plan.STARTER},
        {"features": get_plan("starter").features},
        {"limits": get_plan("starter").limits},
        {"subscription_status": "past_due"},
        {"subscription_status": "canceled"},
        {"current_period_ends_at": PERIOD_END + timedelta(days=30)},
        {"current_period_ends_at": None},
        {"revoked": True},
        {"revoked": True, "revoked_reason": "chargeback"},
        {"is_trial": True, "trial_ends_at": PERIOD_END},
        {"customer_name": "Acme Corp"},
    ],
)
def test_fingerprint_changes_with_what_the_license_says(changes: dict) -> None:
    assert content_fingerprint(make_content(**changes)) != content_fingerprint(make_content())


def test_fingerprint_distinguishes_revocation_but_not_its_note_and_trial_ends() -> None:
    # The operator's note is not signed into the license, so changing it reissues nothing.
    revoked = content_fingerprint(make_content(revoked=True, revoked_reason="a"))
    assert revoked == content_fingerprint(make_content(revoked=True, revoked_reason="b"))
    assert revoked != content_fingerprint(make_content())
    trial = make_content(is_trial=True, trial_ends_at=PERIOD_END)
    later = dataclasses.replace(trial, trial_ends_at=PERIOD_END + timedelta(days=7))
    assert content_fingerprint(trial) != content_fingerprint(later)
