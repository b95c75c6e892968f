"""`POST /v1/invoices/create_preview` on the stand-in, through the real SDK: Stripe's shape at the
pinned API version (checked against stripe-python's Invoice and InvoiceLineItem), flat lines for
the next period, metered usage of the current one, prorations, discounts, and its refusals."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.conftest import recurring_price, reference_fields


def _subscribed(stand_in: StripeStandIn, client: stripe.StripeClient) -> dict[str, Any]:
    """A customer on a $49 flat price plus a 7-cent-per-unit metered price."""
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    product = client.v1.products.create(params={"name": "Professional"})
    flat = recurring_price(client, product.id, 4900)
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "Overage",
            "event_name": "overage",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    metered = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 7,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": flat.id, "quantity": 1}, {"price": metered.id}],
            "success_url": "https://example.com/ok",
            "cancel_url": "https://example.com/no",
        }
    )
    events = stand_in.complete_checkout(session.id)
    sub_id = events[0]["data"]["object"]["subscription"]
    return {"customer": customer.id, "sub": sub_id, "flat": flat.id, "product": product.id}


def _usage(client: stripe.StripeClient, customer: str, identifier: str, value: int, at: int):
    client.v1.billing.meter_events.create(
        params={
            "event_name": "overage",
            "identifier": identifier,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
            "timestamp": at,
        }
    )


def _preview(client: stripe.StripeClient, setup: dict[str, Any]) -> dict[str, Any]:
    return client.v1.invoices.create_preview(
        params={"customer": setup["customer"], "subscription": setup["sub"]}
    ).to_dict()


def test_preview_has_the_pinned_versions_invoice_shape_and_the_next_periods_lines(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    setup = _subscribed(stand_in, client)
    now = int(time.time())
    _usage(client, setup["customer"], "day-1", 5, now)
    _usage(client, setup["customer"], "day-2", 4, now + 60)
    # Before the period started: billed on an earlier invoice, not this one.
    _usage(client, setup["customer"], "old", 100, now - 3 * 86400)

    preview = _preview(client, setup)
    unknown = set(preview) - reference_fields(stripe.Invoice) - {"object"}
    assert not unknown, f"preview has fields stripe.Invoice does not: {unknown}"
    for line in preview["lines"]["data"]:
        unknown = set(line) - reference_fields(stripe.InvoiceLineItem) - {"object"}
        assert not unknown, f"preview line has fields InvoiceLineItem does not: {unknown}"
        assert line["id"].startswith("il_tmp_")

    assert preview["id"].startswith("upcoming_in_") and preview["object"] == "invoice"
    assert (preview["status"], preview["billing_reason"]) == ("draft", "upcoming")
    assert preview["number"] is None and preview["hosted_invoice_url"] is None
    assert preview["status_transitions"]["finalized_at"] is None
    assert "subscription" not in preview
    assert preview["parent"]["subscription_details"]["subscription"] == setup["sub"]

    sub = client.v1.subscriptions.retrieve(setup["sub"])
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    flat, usage = preview["lines"]["data"]
    # The flat price is billed in advance: the next period.
    assert flat["amount"] == 4900 and flat["period"]["start"] == end > start
    assert flat["parent"]["subscription_item_details"]["proration"] is False
    # Usage in arrears: what the meter summed over the current period, at 7 cents.
    assert (usage["quantity"], usage["amount"]) == (9, 63)
    assert usage["period"] == {"start": start, "end": end}
    assert (preview["subtotal"], preview["total"], preview["amount_due"]) == (4963, 4963, 4963)
    assert preview["amount_paid"] == 0 and preview["amount_remaining"] == 4963
    # A preview is not an invoice: nothing listed, nothing to retrieve.
    assert preview["id"] not in [i.id for i in client.v1.invoices.list()]


def test_a_pending_proration_and_a_discount_show_in_the_preview(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    setup = _subscribed(stand_in, client)
    cheaper = client.v1.prices.create(
        params={
            "product": setup["product"],
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.retrieve(setup["sub"])
    flat_item = next(i for i in sub["items"].data if i.price.id == setup["flat"])
    client.v1.subscriptions.update(
        setup["sub"],
        params={
            "items": [{"id": flat_item.id, "price": cheaper.id}],
            "proration_behavior": "create_prorations",
        },
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    client.v1.subscriptions.update(setup["sub"], params={"discounts": [{"coupon": coupon.id}]})

    preview = _preview(client, setup)
    proration = preview["lines"]["data"][0]
    assert proration["parent"]["subscription_item_details"]["proration"] is True
    # The unused part of the $49 period, less the $29 price for it: a credit close to $20.
    assert -2000 <= proration["amount"] < -1990
    flat = next(
        line
        for line in preview["lines"]["data"]
        if not line["parent"]["subscription_item_details"]["proration"] and line["amount"] > 0
    )
    assert flat["amount"] == 2900
    subtotal = sum(line["amount"] for line in preview["lines"]["data"])
    discount = preview["total_discount_amounts"][0]["amount"]
    assert preview["subtotal"] == subtotal and discount == round(subtotal * 0.1)
    assert preview["total"] == subtotal - discount


def test_canceling_at_period_end_bills_only_usage_and_an_ended_one_has_no_preview(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    setup = _subscribed(stand_in, client)
    _usage(client, setup["customer"], "day-1", 3, int(time.time()))
    client.v1.subscriptions.update(setup["sub"], params={"cancel_at_period_end": True})
    preview = _preview(client, setup)
    assert [line["amount"] for line in preview["lines"]["data"]] == [21]

    client.v1.subscriptions.cancel(setup["sub"])
    with pytest.raises(stripe.InvalidRequestError) as ended:
        _preview(client, setup)
    assert ended.value.code == "invoice_upcoming_none"
    assert setup["customer"] in str(ended.value.user_message)

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoices.create_preview(params={"customer": setup["customer"]})
    assert missing.value.param == "subscription"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoices.create_preview(params={"subscription": "sub_nope"})
    assert unknown.value.param == "subscription" and unknown.value.code == "resource_missing"
