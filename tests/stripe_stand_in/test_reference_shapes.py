"""The stand-in's objects have the shapes stripe-python declares at the pinned API version."""

from __future__ import annotations

from typing import Any

import stripe

from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.conftest import open_checkout, reference_fields, subscribe


def test_objects_have_the_reference_shapes_of_the_pinned_api_version(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id).to_dict()
    item = sub["items"]["data"][0]
    invoice = client.v1.invoices.retrieve(sub["latest_invoice"]).to_dict()
    line = invoice["lines"]["data"][0]
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": catalog["customer"].id, "return_url": "https://example.com/"}
    ).to_dict()
    dispute = stand_in.dispute_latest_invoice(sub_id)[0]["data"]["object"]
    charge = client.v1.charges.retrieve(dispute["charge"]).to_dict()
    session = open_checkout(client, catalog).to_dict()
    customer = client.v1.customers.retrieve(catalog["customer"].id).to_dict()
    shapes = [
        (session, stripe.checkout.Session),
        (customer, stripe.Customer),
        (sub, stripe.Subscription),
        (item, stripe.SubscriptionItem),
        (invoice, stripe.Invoice),
        (line, stripe.InvoiceLineItem),
        (portal, stripe.billing_portal.Session),
        (dispute, stripe.Dispute),
        (charge, stripe.Charge),
    ]
    for obj, reference in shapes:
        unknown = set(obj) - reference_fields(reference) - {"object"}
        assert not unknown, f"{obj['object']} has fields {reference.__name__} does not: {unknown}"
    # Where this version moved things: the period on items, the subscription under `parent`.
    assert (
        "current_period_end" not in sub
        and item["current_period_end"] > item["current_period_start"]
    )
    assert "subscription" not in invoice and line["subscription"] == sub_id
    assert invoice["parent"]["subscription_details"]["subscription"] == sub_id
    assert sub["pause_collection"] is None
