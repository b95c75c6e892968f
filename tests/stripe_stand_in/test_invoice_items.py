"""Invoice items and invoices made by hand, as Stripe makes them: an item waits on the customer
until an invoice takes it (`pending_invoice_items_behavior=include`; `exclude` by default), and the
new invoice is a draft that auto_advance finalizes later (docs.stripe.com/api/invoiceitems/create,
docs.stripe.com/api/invoices/create)."""

from __future__ import annotations

import pytest
import stripe


def test_an_invoice_takes_the_pending_items_only_when_asked(two_item_subscription):
    stand_in, sub, _ = two_item_subscription
    client = stand_in.client()
    item = client.v1.invoice_items.create(
        params={
            "customer": sub["customer"],
            "amount": 70,
            "currency": "usd",
            "description": "7 device-days",
            "period": {"start": 100, "end": 200},
        }
    )
    assert item.invoice is None and item.period.end == 200

    empty = client.v1.invoices.create(params={"customer": sub["customer"]})
    assert empty.total == 0 and empty.lines.data == []

    billed = client.v1.invoices.create(
        params={"customer": sub["customer"], "pending_invoice_items_behavior": "include"}
    )
    assert billed.status == "draft" and billed.auto_advance is True
    assert billed.total == billed.amount_due == 70
    assert [line.parent.invoice_item_details.invoice_item for line in billed.lines.data] == [
        item.id
    ]
    assert (
        client.v1.invoices.create(
            params={"customer": sub["customer"], "pending_invoice_items_behavior": "include"}
        ).lines.data
        == []
    )


def test_an_invoice_item_needs_an_amount_and_a_known_customer(two_item_subscription):
    stand_in, sub, _ = two_item_subscription
    client = stand_in.client()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoice_items.create(params={"customer": sub["customer"], "currency": "usd"})
    assert missing.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoice_items.create(
            params={"customer": "cus_nobody", "amount": 1, "currency": "usd"}
        )
    assert unknown.value.param == "customer"
