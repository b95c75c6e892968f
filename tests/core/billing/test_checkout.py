"""One payable checkout per customer, and a second live subscription recorded, never ignored."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe

from core.billing import issues
from core.billing.checkout import CheckoutResult, create_checkout
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.helpers.locks import run_while_stripe_is_slow
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, license_claims, new_customer, subscription_row

PLANS = ("starter", "professional")


def _checkout(customer_id: str, plan: str = "starter") -> CheckoutResult:
    with session_scope() as session:
        return create_checkout(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan=plan,
            success_url="https://example.com/ok",
            cancel_url="https://example.com/no",
        )


def _stripe_customer(customer_id: str) -> str:
    return str(
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
    )


def test_a_new_checkout_expires_the_customers_earlier_open_sessions(stand_in):
    customer_id = new_customer()
    first = _checkout(customer_id, "starter")
    second = _checkout(customer_id, "professional")
    client = stand_in.client()
    assert client.v1.checkout.sessions.retrieve(first.session_id)["status"] == "expired"
    assert client.v1.checkout.sessions.retrieve(second.session_id)["status"] == "open"
    # The first link can no longer be paid: two checkouts never make two subscriptions.
    with pytest.raises(Exception, match="expired"):
        stand_in.complete_checkout(first.session_id)
    handle_inline(stand_in.complete_checkout(second.session_id))
    assert subscription_row(customer_id)["plan"] == "professional"
    subs = client.v1.subscriptions.list(params={"customer": _stripe_customer(customer_id)})
    assert len(subs.data) == 1


def test_concurrent_checkouts_of_a_customer_leave_one_payable_session(stand_in):
    """Both checkouts list the open sessions while Stripe is slow: taken one at a time, the
    second sees and expires the first's session instead of both staying payable."""
    customer_id = new_customer()
    earlier = _checkout(customer_id)  # the customer is known to Stripe, with an open session
    stand_in.set_delay(0.5, "/v1/checkout/sessions")
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda plan: _checkout(customer_id, plan), PLANS))
    finally:
        stand_in.set_delay(0)
    client = stand_in.client()
    sessions = [earlier.session_id, *(result.session_id for result in results)]
    statuses = [client.v1.checkout.sessions.retrieve(s)["status"] for s in sessions]
    assert sorted(statuses) == ["expired", "expired", "open"]


def test_a_second_live_subscription_is_a_recorded_billing_conflict(stand_in):
    customer_id = new_customer()
    handle_inline(stand_in.complete_checkout(_checkout(customer_id).session_id))
    followed = subscription_row(customer_id)["stripe_subscription_id"]

    # A second subscription made in Stripe itself (the dashboard) for the same customer.
    mark = len(stand_in.events)
    second = stand_in.create_subscription_directly(
        _stripe_customer(customer_id),
        get_settings().stripe_price_professional,
        {"customerId": customer_id},
    )
    outcomes = handle_inline(stand_in.events[mark:])
    assert any("billing conflict" in (outcome.note or "") for outcome in outcomes)
    # The row keeps following the first; the second is recorded for an operator.
    assert subscription_row(customer_id)["stripe_subscription_id"] == followed
    assert license_claims(customer_id)["plan"] == "starter"
    with session_scope() as session:
        found = issues.open_issues(session, customer_id)
        assert [(i.kind, i.stripe_object_id) for i in found] == [("conflict", second["id"])]
        assert issues.open_issue_counts(session)["conflict"] == 1

    # Once the second one is canceled, the conflict is resolved.
    mark = len(stand_in.events)
    stand_in.client().v1.subscriptions.cancel(second["id"])
    handle_inline(stand_in.events[mark:])
    with session_scope() as session:
        assert issues.open_issues(session, customer_id) == []


def test_stripe_refusing_the_promotion_code_names_our_field(stand_in: Any):
    customer_id = new_customer()
    client = stand_in.client()
    other = client.v1.customers.create(params={"email": "other@example.com"})
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "once"})
    # Active, so we find it; restricted to another customer, so Stripe refuses it for ours.
    client.v1.promotion_codes.create(
        params={
            "promotion": {"type": "coupon", "coupon": coupon["id"]},
            "code": "THEIRS",
            "customer": other["id"],
        }
    )
    with session_scope() as session, pytest.raises(Exception) as refused:
        create_checkout(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan="starter",
            success_url="https://example.com/ok",
            cancel_url="https://example.com/no",
            promo_code="THEIRS",
        )
    assert getattr(refused.value, "status_code", None) == 422
    assert getattr(refused.value, "field", None) == "promoCode"
    assert not isinstance(refused.value, stripe.StripeError)


def test_stripe_refusing_the_plans_price_names_the_plan_field(stand_in, monkeypatch):
    customer_id = new_customer()
    client = stand_in.client()
    retired = client.v1.prices.create(
        params={
            "product": client.v1.prices.retrieve(get_settings().stripe_price_starter)["product"],
            "currency": "usd",
            "unit_amount": 1900,
            "recurring": {"interval": "month"},
        }
    )
    client.v1.prices.update(retired["id"], params={"active": False})
    monkeypatch.setenv("STRIPE_PRICE_STARTER", retired["id"])
    get_settings.cache_clear()
    with session_scope() as session, pytest.raises(Exception) as refused:
        create_checkout(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan="starter",
            success_url="https://example.com/ok",
            cancel_url="https://example.com/no",
        )
    assert getattr(refused.value, "status_code", None) == 422
    assert getattr(refused.value, "field", None) == "plan"


def test_a_first_checkout_makes_no_stripe_call_while_the_customer_row_is_locked(stand_in):
    customer_id = new_customer()  # not known to Stripe yet: its Stripe customer is made now

    result = run_while_stripe_is_slow(
        stand_in, "/v1/checkout/sessions", customer_id, lambda: _checkout(customer_id)
    )

    # The Stripe customer the session was made for is remembered once Stripe has answered.
    assert result.stripe_customer_id == _stripe_customer(customer_id)
