"""A paid upgrade's promotion code is applied after the payment's event was handled, never while
the event's row is locked (a Stripe write there holds up every other handler of the event and
the sweeper); and a code is added to the discounts a subscription has, never in their place
(Stripe's `discounts` replaces the whole list: docs.stripe.com/api/subscriptions/update)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.billing import changes, handlers, inbox, promotions, reconcile
from core.billing.gateway import get_gateway
from core.db import session_scope
from tasks.billing import apply_promotion, process_event
from tests.core.billing.test_promotion_after_payment import promotion_code, upgrade_paid_later
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import paying_customer, stripe_subscription
from tests.stripe_stand_in import StripeStandIn


def _existing_discount(stand_in: StripeStandIn, sub_id: str) -> str:
    """A discount the subscription already has (an operator's 10% coupon): its id."""
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    sub = client.v1.subscriptions.update(sub_id, params={"discounts": [{"coupon": coupon.id}]})
    (discount_id,) = sub.discounts
    return str(discount_id)


def _upgrade_paid_later(stand_in: StripeStandIn, code: str) -> tuple[str, str, Any, list[Any]]:
    """`upgrade_paid_later`, the payment's events stored (as the webhook would), not handled."""
    customer_id, sub_id, promotion, events = upgrade_paid_later(stand_in, code)
    for event in events:
        with session_scope() as session:
            inbox.store_event(session, event)
    return customer_id, sub_id, promotion, events


def _redeemed(stand_in: StripeStandIn, promotion: Any) -> int:
    return int(stand_in.client().v1.promotion_codes.retrieve(promotion.id).times_redeemed)


def _codes(stand_in: StripeStandIn, sub_id: str) -> list[str | None]:
    sub = get_gateway().retrieve_subscription(sub_id)
    return [discount["promotion_code"] for discount in sub["discounts"]]


def test_handling_the_payment_writes_nothing_to_stripe_and_the_code_follows(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, promotion, events = _upgrade_paid_later(stand_in, "AFTERLOCK")
    paid = next(event for event in events if event["type"] == "invoice.paid")
    mark = len(stand_in.requests)

    with session_scope() as session:
        outcome = handlers.process_event(session, paid["id"])
        # The event's row stays locked until this commits: no Stripe write meanwhile.
        assert [r.path for r in stand_in.requests[mark:] if r.method != "GET"] == []
    assert outcome.promotion_waiting == sub_id
    assert _codes(stand_in, sub_id) == []

    # The follow-up, after the commit: applied once, however often it runs.
    with session_scope() as session:
        assert promotions.apply_waiting_to(session_scope, get_gateway(), sub_id, customer_id)
    with session_scope() as session:
        assert not promotions.apply_waiting_to(session_scope, get_gateway(), sub_id, customer_id)
    assert _codes(stand_in, sub_id) == [promotion.id] and _redeemed(stand_in, promotion) == 1


@pytest.mark.usefixtures("celery_worker")
def test_the_worker_applies_the_code_once_after_handling_every_payment_event(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, promotion, events = _upgrade_paid_later(stand_in, "BYWORKER")

    for event in events:
        process_event.delay(event["id"]).get(timeout=60)
    deadline = time.monotonic() + 30
    while not _codes(stand_in, sub_id) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert _codes(stand_in, sub_id) == [promotion.id]
    assert apply_promotion.delay(sub_id, customer_id).get(timeout=60)["applied"] is False
    assert _redeemed(stand_in, promotion) == 1
    assert promotions.waiting(stripe_subscription(stand_in, customer_id)) is None


def test_reconciliation_applies_a_code_whose_follow_up_never_ran(stand_in: StripeStandIn) -> None:
    customer_id, sub_id, promotion, events = _upgrade_paid_later(stand_in, "LOSTTASK")
    for event in events:
        with session_scope() as session:
            handlers.process_event(session, event["id"])  # its follow-up task lost
    assert _codes(stand_in, sub_id) == []

    with session_scope() as session:
        assert (
            reconcile.repair_customer(
                session, get_gateway(), customer_id, transaction=session_scope
            )
            >= 1
        )

    assert _codes(stand_in, sub_id) == [promotion.id] and _redeemed(stand_in, promotion) == 1


# -- a code joins the discounts the subscription has ------------------------------------------


def test_a_code_given_with_a_downgrade_keeps_the_existing_discount_and_is_not_doubled(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in, "professional")
    kept = _existing_discount(stand_in, sub_id)
    promotion = promotion_code(stand_in, "DOWNHALF")

    for _ in range(2):  # asked again: the code is held already, nothing is sent twice
        with session_scope() as session:
            changes.change_plan(
                session,
                get_gateway(),
                sub_id,
                "starter",
                promo_code="DOWNHALF",
                transaction=session_scope,
            )

    sub = get_gateway().retrieve_subscription(sub_id)
    assert [discount["id"] for discount in sub["discounts"]][0] == kept
    assert _codes(stand_in, sub_id) == [None, promotion.id]
    assert _redeemed(stand_in, promotion) == 1
    renewal = next(
        event["data"]["object"]
        for event in stand_in.advance_period(sub_id)
        if event["type"] == "invoice.paid"
    )
    # Both discounts take their share of the starter price.
    off = sorted(amount["amount"] for amount in renewal["total_discount_amounts"])
    assert off == [renewal["subtotal"] * 10 // 100, renewal["subtotal"] * 50 // 100]


def test_a_code_applied_once_an_upgrade_is_paid_keeps_the_existing_discount(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    kept = _existing_discount(stand_in, sub_id)
    promotion = promotion_code(stand_in, "UPHALF")

    with session_scope() as session:
        changes.change_plan(
            session,
            get_gateway(),
            sub_id,
            "professional",
            promo_code="UPHALF",
            transaction=session_scope,
        )

    sub = get_gateway().retrieve_subscription(sub_id)
    assert sub["discounts"][0]["id"] == kept
    assert _codes(stand_in, sub_id) == [None, promotion.id]
    assert promotions.waiting(sub) is None and _redeemed(stand_in, promotion) == 1
