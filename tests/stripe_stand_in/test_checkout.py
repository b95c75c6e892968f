"""The stand-in's Checkout Sessions through the real SDK: their shape, discounts and promotion
codes, completion into a subscription and its events, listing and expiry."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.conftest import open_checkout


def test_checkout_session_shape_with_promotion_code(
    client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SAVE20"}
    )
    session = open_checkout(client, catalog, discounts=[{"promotion_code": promo.id}])
    assert session.object == "checkout.session" and session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert (session.status, session.payment_status, session.mode) == (
        "open",
        "unpaid",
        "subscription",
    )
    assert session.subscription is None and session.customer == catalog["customer"].id
    assert session.metadata.to_dict() == {"customerId": "c-1", "plan": "professional"}
    assert session.discounts[0].promotion_code == promo.id
    assert (session.amount_subtotal, session.amount_total) == (4900, 3920)
    expanded = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert expanded.line_items.data[0].price.id == catalog["monthly"].id


def test_promotion_codes_and_discounts_are_exclusive(
    client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"amount_off": 500, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        open_checkout(
            client, catalog, allow_promotion_codes=True, discounts=[{"coupon": coupon.id}]
        )
    assert "allow_promotion_codes" in str(raised.value.user_message)


def test_complete_checkout_creates_subscription_and_events(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    session = open_checkout(client, catalog, allow_promotion_codes=True)
    events = stand_in.complete_checkout(session.id)
    assert [e["type"] for e in events] == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    for event in events:
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["livemode"] is False and event["api_version"] == stand_in.api_version
        assert set(event) >= {"created", "data", "pending_webhooks", "request", "type"}
    completed = client.v1.checkout.sessions.retrieve(session.id)
    assert (completed.status, completed.payment_status) == ("complete", "paid")
    sub = events[1]["data"]["object"]
    assert completed.subscription == sub["id"]
    assert sub["metadata"] == {"customerId": "c-1", "plan": "professional", "seats": "5"}
    invoice = events[2]["data"]["object"]
    assert invoice["status"] == "paid" and invoice["amount_paid"] == 4900
    # The pinned API version's shapes: the invoice names its subscription under `parent`, the
    # period lives on the subscription's items.
    assert "subscription" not in invoice and "current_period_end" not in sub
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    period_end = sub["items"]["data"][0]["current_period_end"]
    assert invoice["lines"]["data"][0]["period"]["end"] == period_end


def test_checkout_list_and_expire(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    first, second = open_checkout(client, catalog), open_checkout(client, catalog)
    listed = client.v1.checkout.sessions.list(params={"customer": catalog["customer"].id})
    assert [s.id for s in listed.data] == [second.id, first.id]
    expired = client.v1.checkout.sessions.expire(first.id)
    assert expired.status == "expired"
    assert stand_in.events[-1]["type"] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(first.id)


def test_buyer_enters_a_promotion_code_on_the_page(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"amount_off": 900, "currency": "usd"})
    promo = client.v1.promotion_codes.create(params={"coupon": coupon.id, "code": "WELCOME"})
    session = open_checkout(client, catalog, allow_promotion_codes=True)
    events = stand_in.complete_checkout(session.id, promotion_code="welcome")
    completed = events[0]["data"]["object"]
    assert completed["discounts"] == [{"coupon": None, "promotion_code": promo.id}]
    assert completed["amount_total"] == 4000
    invoice = client.v1.invoices.retrieve(
        events[2]["data"]["object"]["id"], params={"expand": ["discounts"]}
    )
    assert invoice.amount_paid == 4000 and invoice.total_discount_amounts[0].amount == 900
    assert invoice.discounts[0].promotion_code == promo.id
    assert client.v1.promotion_codes.retrieve(promo.id).times_redeemed == 1
    once_used_up = client.v1.subscriptions.retrieve(completed["subscription"])
    assert once_used_up.discounts == []
