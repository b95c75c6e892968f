"""The stand-in's subscriptions through the real SDK: their shape, price changes with proration,
cancelling, renewals that fail and recover, trials, paused collection."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.conftest import recurring_price, subscribe


def test_subscription_shape(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id, params={"expand": ["latest_invoice"]})
    assert sub.object == "subscription" and sub.status == "active"
    assert sub.customer == catalog["customer"].id and sub.cancel_at_period_end is False
    item = sub["items"].data[0]
    assert sub["items"].object == "list" and item.object == "subscription_item"
    assert item.price.id == catalog["monthly"].id and item.price.object == "price"
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in sub and "current_period_start" not in sub
    assert sub.canceled_at is None and sub.trial_end is None
    assert sub.latest_invoice.object == "invoice" and sub.latest_invoice.status == "paid"
    listed = client.v1.subscriptions.list(params={"customer": catalog["customer"].id})
    assert [s.id for s in listed.data] == [sub_id]
    customer = client.v1.customers.retrieve(
        catalog["customer"].id, params={"expand": ["subscriptions"]}
    )
    assert [s.id for s in customer.subscriptions.data] == [sub_id]


def test_update_price_with_proration(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id)
    item_id = sub["items"].data[0].id
    team = recurring_price(client, catalog["product"].id, 9900)
    updated = client.v1.subscriptions.update(
        sub_id,
        params={
            "items": [{"id": item_id, "price": team.id}],
            "proration_behavior": "always_invoice",
            "metadata": {"seats": "10"},
        },
    )
    assert updated["items"].data[0].id == item_id and updated["items"].data[0].price.id == team.id
    assert updated["items"].data[0].current_period_end == sub["items"].data[0].current_period_end
    kinds = [e["type"] for e in stand_in.events[-3:]]
    assert kinds == ["customer.subscription.updated", "invoice.paid", "invoice.payment_succeeded"]
    change = stand_in.events[-3]["data"]
    old_items = change["previous_attributes"]["items"]["data"]
    assert old_items[0]["price"]["id"] == catalog["monthly"].id
    assert change["object"]["metadata"]["seats"] == "10"
    proration = stand_in.events[-1]["data"]["object"]
    assert proration["billing_reason"] == "subscription_update"
    assert 0 < proration["amount_paid"] <= 9900 - 4900
    quiet = client.v1.subscriptions.update(
        sub_id, params={"items": [{"id": item_id, "price": catalog["monthly"].id}]}
    )
    assert quiet.latest_invoice == proration["id"]
    yearly = client.v1.subscriptions.update(
        sub_id,
        params={
            "items": [{"id": item_id, "price": catalog["yearly"].id}],
            "proration_behavior": "create_prorations",
        },
    )
    yearly_item = yearly["items"].data[0]
    assert yearly_item.current_period_end - yearly_item.current_period_start >= 365 * 86400
    assert yearly.billing_cycle_anchor == yearly_item.current_period_start
    assert yearly.latest_invoice != proration["id"]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update(sub_id, params={"proration_behavior": "sometimes"})
    assert raised.value.param == "proration_behavior"


def test_cancel_at_period_end_then_period_ends(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
    assert sub.cancel_at_period_end is True and sub.status == "active"
    period_end = sub["items"].data[0].current_period_end
    assert sub.cancel_at == period_end and sub.canceled_at is not None
    previous = stand_in.events[-1]["data"]["previous_attributes"]
    assert previous["cancel_at_period_end"] is False
    events = stand_in.advance_period(sub_id)
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    ended = client.v1.subscriptions.retrieve(sub_id)
    assert ended.status == "canceled" and ended.ended_at == period_end


def test_cancel_immediately(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    canceled = client.v1.subscriptions.cancel(sub_id)
    assert canceled.status == "canceled" and canceled.canceled_at and canceled.ended_at
    assert stand_in.events[-1]["type"] == "customer.subscription.deleted"
    assert stand_in.requests[-1].method == "DELETE"
    assert client.v1.subscriptions.list().data == []
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [
        sub_id
    ]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.cancel(sub_id)
    assert raised.value.http_status == 404 and raised.value.code == "resource_missing"


def test_renewal_failure_and_recovery(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    before = client.v1.subscriptions.retrieve(sub_id)
    renewed = stand_in.advance_period(sub_id)
    assert [e["type"] for e in renewed] == [
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    after = client.v1.subscriptions.retrieve(sub_id)
    assert after["items"].data[0].current_period_start == before["items"].data[0].current_period_end
    failed = stand_in.fail_payment(sub_id)
    assert [e["type"] for e in failed] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert failed[0]["data"]["object"]["status"] == "open"
    assert failed[1]["data"]["object"]["status"] == "past_due"
    assert failed[1]["data"]["previous_attributes"]["status"] == "active"
    recovered = stand_in.pay_invoice(sub_id)
    assert recovered[-1]["data"]["object"]["status"] == "active"
    invoices = client.v1.invoices.list(params={"subscription": sub_id})
    assert [i.status for i in invoices.data] == ["paid", "paid", "paid"]


def test_create_subscription_directly_with_trial(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    trial_end = int(time.time()) + 14 * 86400
    sub = stand_in.create_subscription_directly(
        catalog["customer"].id, catalog["monthly"].id, {"customerId": "c-1"}, trial_end
    )
    assert sub["status"] == "trialing" and sub["trial_end"] == trial_end
    assert sub["items"]["data"][0]["current_period_end"] == trial_end
    assert stand_in.events[-3]["type"] == "customer.subscription.created"
    stand_in.advance_period(sub["id"])
    assert client.v1.subscriptions.retrieve(sub["id"]).status == "active"


def test_cancel_now_settles_with_a_final_invoice_or_drops_pending_prorations(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    team = recurring_price(client, catalog["product"].id, 9900)
    settled, dropped = subscribe(stand_in, client, catalog), subscribe(stand_in, client, catalog)
    for sub_id in (settled, dropped):
        item = client.v1.subscriptions.retrieve(sub_id)["items"].data[0].id
        client.v1.subscriptions.update(
            sub_id,
            params={
                "items": [{"id": item, "price": team.id}],
                "proration_behavior": "create_prorations",
            },
        )
    mark = len(stand_in.events)
    client.v1.subscriptions.cancel(settled, params={"invoice_now": True, "prorate": True})
    kinds = [e["type"] for e in stand_in.events[mark:]]
    assert kinds == ["customer.subscription.deleted", "invoice.paid", "invoice.payment_succeeded"]
    final = stand_in.events[-1]["data"]["object"]
    assert final["billing_reason"] == "subscription_update"
    mark = len(stand_in.events)
    client.v1.subscriptions.cancel(dropped)  # Stripe's default: pending prorations dropped
    assert [e["type"] for e in stand_in.events[mark:]] == ["customer.subscription.deleted"]


def test_pause_collection_and_a_renewal_awaiting_its_charge(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    paused = client.v1.subscriptions.update(
        sub_id, params={"pause_collection": {"behavior": "void"}}
    )
    assert paused.pause_collection.behavior == "void" and paused.status == "active"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update(sub_id, params={"pause_collection": {"behavior": "x"}})
    assert raised.value.param == "pause_collection[behavior]"
    assert (
        client.v1.subscriptions.update(sub_id, params={"pause_collection": ""}).pause_collection
        is None
    )

    before = client.v1.subscriptions.retrieve(sub_id)["items"].data[0].current_period_end
    events = stand_in.renew_awaiting_payment(sub_id)
    assert [e["type"] for e in events] == ["invoice.created", "customer.subscription.updated"]
    renewed = client.v1.subscriptions.retrieve(sub_id, params={"expand": ["latest_invoice"]})
    assert renewed.status == "active" and renewed.latest_invoice.status == "draft"
    assert renewed["items"].data[0].current_period_start == before
    failed = stand_in.fail_payment(sub_id)
    assert failed[0]["data"]["object"]["status"] == "open"
    gave_up = stand_in.exhaust_retries(sub_id, "unpaid")
    assert gave_up[-1]["data"]["object"]["status"] == "unpaid"
