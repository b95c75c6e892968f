"""Plan changes, cancellation and deactivation against the stand-in: upgrades are collected,
cancellation says when access ends, and no Stripe call waits under the customer lock."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.billing import changes
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.errors import InvalidInputError
from tests.conftest import pg_scalar
from tests.helpers.locks import run_while_stripe_is_slow
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    license_claims,
    paying_customer,
    start_checkout,
    stripe_subscription,
    subscription_invoices,
    subscription_row,
)


def test_an_upgrade_then_an_immediate_cancel_collects_the_upgrade(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    with session_scope() as session:
        upgraded = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    assert upgraded.plan == "professional" and not upgraded.pending_payment
    upgrade_invoices = [
        i
        for i in subscription_invoices(stand_in, sub_id)
        if i["billing_reason"] == "subscription_update"
    ]
    assert len(upgrade_invoices) == 1
    assert upgrade_invoices[0]["status"] == "paid" and upgrade_invoices[0]["amount_paid"] > 0

    with session_scope() as session:
        canceled = changes.cancel_subscription(
            session, get_gateway(), sub_id, immediately=True, transaction=session_scope
        )
    assert canceled.status == "canceled" and canceled.access_ends_at == canceled.canceled_at
    # The final invoice credits the unused part of the professional period to the customer.
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    balance = stand_in.client().v1.customers.retrieve(str(stripe_customer))["balance"]
    assert balance < 0
    # Money was collected for the upgrade: what was paid covers more than the starter price.
    paid = sum(i["amount_paid"] for i in subscription_invoices(stand_in, sub_id))
    assert paid > 2900
    assert license_claims(customer_id)["subscription"]["status"] == "canceled"


def test_a_downgrade_is_credited_on_the_next_invoice_not_charged_now(stand_in):
    _, sub_id = paying_customer(stand_in, "professional")
    before = len(subscription_invoices(stand_in, sub_id))
    with session_scope() as session:
        changed = changes.change_plan(
            session, get_gateway(), sub_id, "starter", transaction=session_scope
        )
    assert changed.plan == "starter"
    update = [r for r in stand_in.requests if r.method == "POST" and r.path.endswith(sub_id)][-1]
    assert update.params["proration_behavior"] == "create_prorations"
    assert "payment_behavior" not in update.params
    assert len(subscription_invoices(stand_in, sub_id)) == before  # nothing billed now
    renewal = [e for e in stand_in.advance_period(sub_id) if e["type"] == "invoice.paid"]
    assert renewal[0]["data"]["object"]["amount_paid"] < 2900  # the credit was applied


def test_cancel_at_period_end_says_when_access_ends(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    with session_scope() as session:
        change = changes.cancel_subscription(
            session, get_gateway(), sub_id, transaction=session_scope
        )
    assert change.cancel_at_period_end and change.status == "active"
    assert change.access_ends_at == change.current_period_ends_at
    assert license_claims(customer_id)["subscription"]["status"] == "active"


def test_deactivate_keeps_a_paying_customer_until_the_end_of_the_paid_period(stand_in):
    customer_id, sub_id = paying_customer(stand_in, "professional")
    with session_scope() as session:
        done = changes.deactivate_customer(
            session, get_gateway(), customer_id, transaction=session_scope
        )
    assert done.at_period_end and not done.stripe_canceled
    period_end = datetime.fromisoformat(
        str(subscription_row(customer_id)["current_period_ends_at"])
    )
    assert done.access_ends_at == period_end
    assert subscription_row(customer_id)["plan"] == "professional"
    assert license_claims(customer_id)["plan"] == "professional"
    sub = stripe_subscription(stand_in, customer_id)
    assert sub["status"] == "active" and sub["cancel_at_period_end"] is True


def test_a_promotion_code_is_applied_on_a_plan_change(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "once"})
    client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "HALF"}
    )
    with session_scope() as session:
        changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code="HALF",
            transaction=session_scope,
        )
    assert stripe_subscription(stand_in, customer_id)["discounts"]
    with session_scope() as session, pytest.raises(InvalidInputError) as refused:
        changes.change_plan(
            session, get_gateway(), sub_id, "starter", promo_code="NOPE", transaction=session_scope
        )
    assert refused.value.field == "promoCode"


def test_no_stripe_call_is_made_while_the_customer_row_is_locked(stand_in):
    customer_id, sub_id = paying_customer(stand_in)

    def upgrade() -> changes.SubscriptionChange:
        with session_scope() as session:
            return changes.change_plan(
                session, get_gateway(), sub_id, "professional", transaction=session_scope
            )

    change = run_while_stripe_is_slow(stand_in, "/v1/subscriptions/", customer_id, upgrade)

    assert change.plan == "professional"


def test_an_upgrade_is_granted_only_once_its_invoice_is_paid(stand_in):
    customer_id, sub_id = paying_customer(stand_in)
    stripe_customer = str(
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
    )
    stand_in.decline_charges(stripe_customer)
    mark = len(stand_in.events)
    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    # Stripe kept the old price (pending_if_incomplete): nothing bigger is granted.
    assert change.pending_payment and change.plan == "starter"
    handle_inline(stand_in.events[mark:])
    assert subscription_row(customer_id)["plan"] == "starter"
    assert license_claims(customer_id)["plan"] == "starter"

    # The customer pays the upgrade's invoice: now the bigger plan is theirs.
    stand_in.decline_charges(stripe_customer, False)
    handle_inline(stand_in.pay_invoice(sub_id))
    assert subscription_row(customer_id)["plan"] == "professional"
    assert license_claims(customer_id)["plan"] == "professional"


def test_a_customer_deactivated_now_within_the_trial_window_can_subscribe_again(stand_in):
    customer_id, _ = paying_customer(stand_in, "starter")
    with session_scope() as session:
        done = changes.deactivate_customer(
            session, get_gateway(), customer_id, immediately=True, transaction=session_scope
        )
    assert done.stripe_canceled
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("trial", "trialing")
    # Back on the free tier, the customer may pay again: a new checkout, then a new subscription.
    handle_inline(start_checkout(stand_in, customer_id, "professional"))
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("professional", "active")
    assert license_claims(customer_id)["plan"] == "professional"
