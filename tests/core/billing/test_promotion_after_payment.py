"""A promotion code given with an upgrade, applied once the upgrade is paid: once, whoever finds
it waiting first (the plan change or the webhook of its payment), and a code Stripe refuses by
then is an operator's billing issue, not a log line."""

from __future__ import annotations

from typing import Any

import pytest

from core.billing import changes, issues, promotions
from core.billing.gateway import get_gateway
from core.db import session_scope
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import paying_customer, stripe_subscription
from tests.stripe_stand_in import StripeStandIn


def promotion_code(stand_in: StripeStandIn, code: str) -> Any:
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "forever"})
    return client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
    )


def upgrade_paid_later(stand_in: StripeStandIn, code: str) -> tuple[str, str, Any, list[Any]]:
    """A starter customer whose upgrade with `code` was paid after a decline, its events (the
    last item) not handled yet: the code waits in the subscription's metadata."""
    customer_id, sub_id = paying_customer(stand_in)
    promotion = promotion_code(stand_in, code)
    stripe_customer = stripe_subscription(stand_in, customer_id)["customer"]
    stand_in.decline_charges(stripe_customer)
    with session_scope() as session:
        changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code=code,
            transaction=session_scope,
        )
    stand_in.decline_charges(stripe_customer, False)
    events = stand_in.pay_invoice(sub_id)
    assert promotions.waiting(stripe_subscription(stand_in, customer_id)) == promotion.id
    return customer_id, sub_id, promotion, events


def test_a_waiting_code_found_twice_at_once_is_redeemed_once(stand_in: StripeStandIn) -> None:
    customer_id, sub_id, promotion, _ = upgrade_paid_later(stand_in, "ONCEONLY")
    # The plan change and the payment's webhook both read the subscription before either
    # applied the code.
    read = get_gateway().retrieve_subscription(sub_id)
    for _ in range(2):
        promotions.apply_waiting(session_scope, get_gateway(), read, customer_id)

    redeemed = stand_in.client().v1.promotion_codes.retrieve(promotion.id)
    assert redeemed.times_redeemed == 1
    sub = stripe_subscription(stand_in, customer_id)
    assert len(sub["discounts"]) == 1 and promotions.waiting(sub) is None


def test_a_code_refused_once_the_upgrade_is_paid_is_a_billing_issue(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, promotion, _ = upgrade_paid_later(stand_in, "GONESOON")
    stand_in.client().v1.promotion_codes.update(promotion.id, params={"active": False})

    with session_scope() as session:
        read = get_gateway().retrieve_subscription(sub_id)
        promotions.apply_waiting(session_scope, get_gateway(), read, customer_id)

    sub = stripe_subscription(stand_in, customer_id)
    assert sub["discounts"] == [] and promotions.waiting(sub) is None
    with session_scope() as session:
        found = [(i.kind, i.stripe_status) for i in issues.open_issues(session, customer_id)]
    assert found == [(issues.PROMOTION, "refused")]


def test_a_refused_code_stays_on_record_when_the_callers_transaction_fails(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, promotion, _ = upgrade_paid_later(stand_in, "GONELATER")
    stand_in.client().v1.promotion_codes.update(promotion.id, params={"active": False})

    with pytest.raises(RuntimeError), session_scope():
        read = get_gateway().retrieve_subscription(sub_id)
        promotions.apply_waiting(session_scope, get_gateway(), read, customer_id)
        raise RuntimeError("the caller's transaction fails after the Stripe writes")

    # The code was cleared in Stripe: no later run would find it again to record the refusal.
    assert promotions.waiting(stripe_subscription(stand_in, customer_id)) is None
    with session_scope() as session:
        found = [(i.kind, i.stripe_status) for i in issues.open_issues(session, customer_id)]
    assert found == [(issues.PROMOTION, "refused")]
