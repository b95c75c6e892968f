"""Voiding and finalizing invoices as Stripe does: only an open (or uncollectible) invoice can be
voided, a subscription's draft is finalized first (it cannot be deleted), and a voided invoice is
never collected (docs.stripe.com/api/invoices/void, docs.stripe.com/api/invoices/finalize,
docs.stripe.com/api/invoices/delete)."""

from __future__ import annotations

import pytest
import stripe


def test_an_open_renewal_invoice_is_voided_and_nothing_is_owed(two_item_subscription):
    stripe_server, sub, _ = two_item_subscription
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


def test_a_draft_is_finalized_before_it_can_be_voided(two_item_subscription):
    stripe_server, sub, _ = two_item_subscription
    stripe_server.renew_awaiting_payment(sub["id"])
    client = stripe_server.client()
    draft_id = client.v1.subscriptions.retrieve(sub["id"])["latest_invoice"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(draft_id)
    finalized = client.v1.invoices.finalize_invoice(draft_id, params={"auto_advance": False})
    assert finalized["status"] == "open" and finalized["auto_advance"] is False
    assert client.v1.invoices.void_invoice(draft_id)["status"] == "void"


def test_a_paid_invoice_cannot_be_voided(two_item_subscription):
    stripe_server, sub, _ = two_item_subscription
    client = stripe_server.client()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(sub["latest_invoice"])
