"""Voiding and finalizing invoices as Stripe does: only an open (or uncollectible) invoice can be
voided, a subscription's draft is finalized first (it cannot be deleted), and a voided invoice is
never collected (docs.stripe.com/api/invoices/void, docs.stripe.com/api/invoices/finalize,
docs.stripe.com/api/invoices/delete)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn, start_stand_in


@pytest.fixture
def stripe_server() -> Iterator[StripeStandIn]:
    server = start_stand_in()
    try:
        yield server
    finally:
        server.stop()


def _subscription(stand_in: StripeStandIn) -> dict:
    client = stand_in.client()
    product = client.v1.products.create(params={"name": "Starter"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
        }
    )
    customer = client.v1.customers.create(params={"email": "v@example.com"})
    return client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    ).to_dict()


def test_an_open_renewal_invoice_is_voided_and_nothing_is_owed(stripe_server):
    sub = _subscription(stripe_server)
    stripe_server.fail_payment(sub["id"])
    client = stripe_server.client()
    invoice_id = client.v1.subscriptions.retrieve(sub["id"])["latest_invoice"]
    voided = client.v1.invoices.void_invoice(invoice_id)
    assert voided["status"] == "void" and voided["amount_remaining"] == 0
    assert voided["status_transitions"]["voided_at"] is not None
    assert any(e["type"] == "invoice.voided" for e in stripe_server.events)
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.invoices.void_invoice(invoice_id)
    assert again.value.http_status == 400


def test_a_draft_is_finalized_before_it_can_be_voided(stripe_server):
    sub = _subscription(stripe_server)
    stripe_server.renew_awaiting_payment(sub["id"])
    client = stripe_server.client()
    draft_id = client.v1.subscriptions.retrieve(sub["id"])["latest_invoice"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(draft_id)
    finalized = client.v1.invoices.finalize_invoice(draft_id, params={"auto_advance": False})
    assert finalized["status"] == "open" and finalized["auto_advance"] is False
    assert client.v1.invoices.void_invoice(draft_id)["status"] == "void"


def test_a_paid_invoice_cannot_be_voided(stripe_server):
    sub = _subscription(stripe_server)
    client = stripe_server.client()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(sub["latest_invoice"])
