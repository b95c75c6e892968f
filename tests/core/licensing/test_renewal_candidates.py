"""customers_to_renew picks exactly the customers renew_license re-signs.

The query mirrors the expiry rules in SQL; one it wrongly includes is skipped on every run (and
enough of them starve the rest), one it wrongly leaves out is never renewed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.revocation import revoke_license
from core.licensing.service import customers_to_renew, reissue_license, renew_license
from models import License, Subscription

NOW = datetime.now(UTC)
PAID = {"plan": "starter", "status": "active", "current_period_ends_at": NOW + timedelta(30)}
# A row synced from Stripe carries Stripe's trial end: none, for a subscription without a trial.
STRIPE = {
    "stripe_subscription_id": "sub_x",
    "paid_through_at": NOW - timedelta(days=2),
    "trial_ends_at": None,
}
# name: (subscription values, license expires_at to set or None to keep, renewable)
SCENARIOS: dict[str, tuple[dict[str, object], datetime | None, bool]] = {
    "trial ending soon": ({"trial_ends_at": NOW + timedelta(days=2)}, None, False),
    "trial ended, still trialing": ({"trial_ends_at": NOW - timedelta(days=1)}, None, False),
    "trial issued long ago": ({}, NOW + timedelta(days=1), True),
    "paid, issued long ago": (PAID, NOW + timedelta(days=6), True),
    "paid, far from expiry": (PAID, None, False),
    "paid, period not extended": (
        {**PAID, "current_period_ends_at": NOW - timedelta(days=1)}, None, False,
    ),
    "past_due, ends with what was paid": ({**PAID, **STRIPE, "status": "past_due"}, None, False),
    "past_due, issued long ago": (
        {**PAID, **STRIPE, "status": "past_due"}, NOW + timedelta(days=1), True,
    ),
    # A trial's first charge failed: nothing paid, no grace (the trial was shorter than one).
    "past_due after a trial, issued long ago": (
        {**PAID, **STRIPE, "status": "past_due", "paid_through_at": NOW - timedelta(days=2),
         "trial_ends_at": NOW - timedelta(days=1)},
        NOW + timedelta(days=1), False,
    ),
    # Converted an hour ago, its first charge under way: the trial's end plus the grace.
    "active after a trial, charge under way": (
        {**PAID, **STRIPE, "paid_through_at": NOW - timedelta(days=14),
         "trial_ends_at": NOW - timedelta(hours=1)},
        NOW + timedelta(days=1), True,
    ),
    "stripe row not yet paid through": (
        {**PAID, **STRIPE, "paid_through_at": None}, NOW + timedelta(days=6), True,
    ),
    "paused collection": ({**PAID, "collection_paused": True}, None, False),
    "no period end": ({**PAID, "current_period_ends_at": None}, NOW + timedelta(days=6), True),
    "canceled": ({**PAID, "status": "canceled"}, NOW + timedelta(days=1), False),
    "revoked": (PAID, None, False),
}  # fmt: skip


def _customer(name: str, values: dict[str, object], expires_at: datetime | None) -> str:
    email = name.replace(" ", "-").replace(",", "") + "@acme.example"
    with session_scope() as session:
        cid = create_customer(session, email=email).customer_id
    with session_scope() as session:
        if "stripe_subscription_id" in values:
            values = {**values, "stripe_subscription_id": f"sub_{cid}"}
        session.execute(update(Subscription).where(Subscription.customer_id == cid).values(values))
        reissue_license(session, cid, reason="test set-up")
        if name == "revoked":
            revoke_license(session, cid, reason="test")
        if expires_at is not None:
            session.execute(
                update(License)
                .where(License.customer_id == cid, License.superseded_at.is_(None))
                .values(expires_at=expires_at)
            )
    return cid


def test_candidates_are_exactly_the_licenses_renewal_resigns() -> None:
    customers = {name: _customer(name, *scenario[:2]) for name, scenario in SCENARIOS.items()}
    with session_scope() as session:
        candidates = set(customers_to_renew(session))
    renewed = set()
    for cid in customers.values():
        with session_scope() as session:
            if renew_license(session, cid) is not None:
                renewed.add(cid)
    expected = {customers[name] for name, (_, _, renewable) in SCENARIOS.items() if renewable}
    name_of = {cid: name for name, cid in customers.items()}
    assert sorted(name_of[c] for c in renewed) == sorted(name_of[c] for c in expected)
    assert sorted(name_of[c] for c in candidates) == sorted(name_of[c] for c in expected)
    with session_scope() as session:  # renewed once, none is a candidate any more
        assert customers_to_renew(session) == []
