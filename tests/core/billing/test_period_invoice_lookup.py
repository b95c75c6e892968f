"""The invoice covering a subscription's period is found however many invoices came after it:
the invoice list is read page by page, not only its newest ten."""

from __future__ import annotations

from core.billing import invoices
from core.billing.gateway import get_gateway
from core.billing.sync import subscription_item
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import paying_customer, stripe_subscription, subscription_invoices
from tests.stripe_stand_in import StripeStandIn


def test_a_paid_renewal_is_found_behind_a_dozen_later_invoices(stand_in: StripeStandIn) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stand_in.fail_payment(sub_id)
    stand_in.pay_invoice(sub_id)  # the renewal, paid after a retry
    client = stand_in.client()
    item = subscription_item(stripe_subscription(stand_in, customer_id))
    assert item is not None
    for _ in range(11):  # a seat added and removed: each addition invoiced at once
        for quantity, proration in ((2, "always_invoice"), (1, "create_prorations")):
            client.v1.subscriptions.update(
                sub_id,
                params={
                    "items": [{"id": item["id"], "quantity": quantity}],
                    "proration_behavior": proration,
                },
            )
    assert len(subscription_invoices(stand_in, sub_id)) > 12

    sub = get_gateway().retrieve_subscription(sub_id)

    assert invoices.period_paid(sub) is True
    assert invoices.period_invoice(sub)["billing_reason"] == "subscription_cycle"
