"""What plan changes and cancellations charge at their edges, against the stand-in: no credit for
time nobody paid for, no renewal or discount from an upgrade never paid, a period judged paid by
its own invoice, and no renewal grace for a subscription that will not renew."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from core.billing import changes
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    license_claims,
    paying_customer,
    stripe_subscription,
    subscription_invoices,
    subscription_row,
)


def _stripe_customer(stand_in: Any, customer_id: str) -> dict[str, Any]:
    stripe_id = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    return stand_in.client().v1.customers.retrieve(str(stripe_id)).to_dict()


def _renewals(stand_in: Any, sub_id: str) -> list[dict[str, Any]]:
    return [
        i
        for i in subscription_invoices(stand_in, sub_id)
        if i["billing_reason"] == "subscription_cycle"
    ]


def _period_end(customer_id: str) -> datetime:
    return datetime.fromisoformat(str(subscription_row(customer_id)["current_period_ends_at"]))


def _paid_through(customer_id: str) -> datetime:
    value = pg_scalar(
        f"SELECT paid_through_at FROM subscriptions WHERE customer_id = '{customer_id}'"
    )
    assert isinstance(value, datetime)
    return value


def _cancel_now(customer_id: str, sub_id: str) -> changes.SubscriptionChange:
    with session_scope() as session:
        return changes.cancel_subscription(
            session, get_gateway(), sub_id, immediately=True, transaction=session_scope
        )


# -- 2. cancelling now credits only paid time ---------------------------------------------------


def test_cancelling_a_past_due_subscription_now_credits_nothing_and_voids_the_renewal(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    handle_inline(stand_in.fail_payment(sub_id))
    assert subscription_row(customer_id)["status"] == "past_due"

    canceled = _cancel_now(customer_id, sub_id)

    assert canceled.status == "canceled"
    # The unpaid renewal is no credit on the customer's balance, and is never collected.
    assert _stripe_customer(stand_in, customer_id).get("balance", 0) == 0
    assert [i["status"] for i in _renewals(stand_in, sub_id)] == ["void"]
    cancel = [r for r in stand_in.requests if r.method == "DELETE" and r.path.endswith(sub_id)]
    # A final invoice only of what is not invoiced yet (usage, prorations): no unused-time credit.
    assert "prorate" not in cancel[-1].params
    # Running it again changes nothing, fails on nothing, and cancels or voids nothing twice.
    calls = len(stand_in.requests)
    assert _cancel_now(customer_id, sub_id).status == "canceled"
    again = [r for r in stand_in.requests[calls:] if r.method != "GET"]
    assert again == []


def test_cancelling_now_while_the_renewal_is_a_draft_voids_it_and_credits_nothing(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    handle_inline(stand_in.renew_awaiting_payment(sub_id))

    _cancel_now(customer_id, sub_id)

    assert _stripe_customer(stand_in, customer_id).get("balance", 0) == 0
    assert [i["status"] for i in _renewals(stand_in, sub_id)] == ["void"]
    assert license_claims(customer_id)["subscription"]["status"] == "canceled"


# -- 3. an unpaid upgrade does not un-cancel --------------------------------------------------


def test_an_unpaid_upgrade_leaves_a_canceling_subscription_to_end(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    with session_scope() as session:
        changes.cancel_subscription(session, get_gateway(), sub_id, transaction=session_scope)
    stand_in.decline_charges(_stripe_customer(stand_in, customer_id)["id"])
    mark = len(stand_in.events)

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )

    assert change.pending_payment and change.cancel_at_period_end
    handle_inline(stand_in.events[mark:])
    sub = stripe_subscription(stand_in, customer_id)
    assert sub["cancel_at_period_end"] is True
    assert sub["pending_update"]["cancel_at_period_end"] is False
    assert subscription_row(customer_id)["cancel_at_period_end"] is True
    # The period ends: the subscription ends with it, and nothing more is charged.
    paid_before = sum(i["amount_paid"] for i in subscription_invoices(stand_in, sub_id))
    handle_inline(stand_in.advance_period(sub_id))
    assert stripe_subscription(stand_in, customer_id)["status"] == "canceled"
    assert sum(i["amount_paid"] for i in subscription_invoices(stand_in, sub_id)) == paid_before
    assert subscription_row(customer_id)["status"] == "canceled"


def test_cancelling_again_after_an_unpaid_upgrade_drops_the_upgrade(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    with session_scope() as session:
        changes.cancel_subscription(session, get_gateway(), sub_id, transaction=session_scope)
    stripe_customer = _stripe_customer(stand_in, customer_id)["id"]
    stand_in.decline_charges(stripe_customer)
    with session_scope() as session:
        changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    with session_scope() as session:
        change = changes.cancel_subscription(
            session, get_gateway(), sub_id, transaction=session_scope
        )
    assert change.cancel_at_period_end and not change.pending_payment
    # The upgrade's invoice is void: nobody can pay it, so it neither upgrades nor renews.
    upgrade = [i for i in subscription_invoices(stand_in, sub_id) if i["amount_due"] > 0][0]
    assert upgrade["billing_reason"] == "subscription_update" and upgrade["status"] == "void"
    stand_in.decline_charges(stripe_customer, False)
    with pytest.raises(Exception, match="no open invoice"):
        stand_in.pay_invoice(sub_id)
    sub = stripe_subscription(stand_in, customer_id)
    assert (
        sub["cancel_at_period_end"] is True and subscription_row(customer_id)["plan"] == "starter"
    )


def test_a_paid_upgrade_keeps_a_canceling_subscription(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    with session_scope() as session:
        changes.cancel_subscription(session, get_gateway(), sub_id, transaction=session_scope)
    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    assert change.plan == "professional" and not change.cancel_at_period_end
    assert stripe_subscription(stand_in, customer_id)["cancel_at_period_end"] is False


# -- 4. a promotion code waits for the upgrade's payment --------------------------------------


def _promotion(stand_in: Any, code: str) -> None:
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "forever"})
    client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
    )


def test_a_promotion_code_with_an_unpaid_upgrade_discounts_nothing(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    _promotion(stand_in, "HALFOFF")
    stripe_customer = _stripe_customer(stand_in, customer_id)["id"]
    stand_in.decline_charges(stripe_customer)
    mark = len(stand_in.events)
    with session_scope() as session:
        change = changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code="HALFOFF",
            transaction=session_scope,
        )
    assert change.pending_payment
    handle_inline(stand_in.events[mark:])
    assert stripe_subscription(stand_in, customer_id)["discounts"] == []
    # The upgrade expires unpaid: the old plan renews at its full price.
    handle_inline(stand_in.expire_pending_update(sub_id))
    stand_in.decline_charges(stripe_customer, False)
    renewal = [e for e in stand_in.advance_period(sub_id) if e["type"] == "invoice.paid"]
    assert renewal[0]["data"]["object"]["amount_paid"] == 2900
    assert stripe_subscription(stand_in, customer_id)["discounts"] == []


def test_a_promotion_code_applies_once_the_upgrade_is_paid(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    _promotion(stand_in, "HALFLATER")
    stripe_customer = _stripe_customer(stand_in, customer_id)["id"]
    stand_in.decline_charges(stripe_customer)
    with session_scope() as session:
        changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code="HALFLATER",
            transaction=session_scope,
        )
    stand_in.decline_charges(stripe_customer, False)
    handle_inline(stand_in.pay_invoice(sub_id))
    sub = stripe_subscription(stand_in, customer_id)
    assert len(sub["discounts"]) == 1 and "zemfyre_promotion_after_payment" not in sub["metadata"]
    assert subscription_row(customer_id)["plan"] == "professional"
    renewal = [e for e in stand_in.advance_period(sub_id) if e["type"] == "invoice.paid"]
    # The code's 50% off the professional price, no more and no less.
    paid = renewal[0]["data"]["object"]
    assert paid["subtotal"] == 9900 and paid["amount_paid"] == 4950


def test_a_promotion_code_with_a_paid_upgrade_applies_at_once(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    _promotion(stand_in, "HALFNOW")
    with session_scope() as session:
        changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code="HALFNOW",
            transaction=session_scope,
        )
    sub = stripe_subscription(stand_in, customer_id)
    assert len(sub["discounts"]) == 1 and "zemfyre_promotion_after_payment" not in sub["metadata"]


# -- 5. a period is paid when its own invoice is ----------------------------------------------


def test_an_upgrade_paid_while_the_renewal_is_a_draft_does_not_pay_the_new_period(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    first_period_end = _period_end(customer_id)
    handle_inline(stand_in.renew_awaiting_payment(sub_id))
    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    assert change.plan == "professional" and not change.pending_payment
    assert _paid_through(customer_id) == first_period_end

    # The renewal's charge then fails: the license ends with what was paid, plus past_due grace.
    handle_inline(stand_in.fail_payment(sub_id))
    assert subscription_row(customer_id)["status"] == "past_due"
    assert _paid_through(customer_id) == first_period_end
    grace = timedelta(days=get_settings().license_past_due_grace_days)
    assert license_claims(customer_id)["exp"] == int((first_period_end + grace).timestamp())

    # Paid after all: now the new period is paid, though the upgrade is the latest invoice.
    handle_inline(stand_in.pay_invoice(sub_id))
    assert _paid_through(customer_id) == _period_end(customer_id) > first_period_end


# -- 7. no renewal grace for a subscription that will not renew -------------------------------


def test_a_subscription_set_to_cancel_gets_no_grace_past_its_period(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    period_end = _period_end(customer_id)
    grace = timedelta(days=get_settings().license_grace_days)
    assert license_claims(customer_id)["exp"] == int((period_end + grace).timestamp())

    with session_scope() as session:
        changes.cancel_subscription(session, get_gateway(), sub_id, transaction=session_scope)

    claims = license_claims(customer_id)
    assert claims["exp"] == int(period_end.timestamp())
    assert claims["subscription"]["cancelAtPeriodEnd"] is True
    # Kept after all: the renewal grace is back.
    with session_scope() as session:
        changes.change_plan(session, get_gateway(), sub_id, "starter", transaction=session_scope)
    claims = license_claims(customer_id)
    assert claims["exp"] == int((period_end + grace).timestamp())
    assert "cancelAtPeriodEnd" not in claims["subscription"]


def test_a_past_due_subscription_set_to_cancel_keeps_its_past_due_grace(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    handle_inline(stand_in.fail_payment(sub_id))
    paid_through = _paid_through(customer_id)
    grace = timedelta(days=get_settings().license_past_due_grace_days)
    assert license_claims(customer_id)["exp"] == int((paid_through + grace).timestamp())

    with session_scope() as session:
        changes.cancel_subscription(session, get_gateway(), sub_id, transaction=session_scope)

    # Stripe still retries the renewal it is owed: the license is not cut off meanwhile.
    assert subscription_row(customer_id)["cancel_at_period_end"] is True
    assert license_claims(customer_id)["exp"] == int((paid_through + grace).timestamp())
