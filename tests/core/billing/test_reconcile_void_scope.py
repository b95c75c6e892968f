"""Reconciliation voids only what a cancel now of ours left open: never an invoice of an earlier
period, never one an operator wrote off (`uncollectible`), never after a Dashboard cancel.

Voiding an invoice re-bills the metered usage it carried (`void_unserved`): a written-off debt
voided that way would be charged again (docs.stripe.com/api/invoices/mark_uncollectible)."""

from __future__ import annotations

from typing import Any

import pytest

from core.billing import changes, reconcile
from core.billing.gateway import get_gateway
from core.db import session_scope
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    meter_usage,
    paying_customer,
    stripe_subscription,
)
from tests.stripe_stand_in import StripeStandIn


def _invoice(stand_in: StripeStandIn, invoice_id: str) -> dict[str, Any]:
    return stand_in.client().v1.invoices.retrieve(invoice_id).to_dict()


def _reconcile(customer_id: str) -> int:
    with session_scope() as session:
        return reconcile.repair_customer(
            session, get_gateway(), customer_id, transaction=session_scope
        )


def _billed_again(stand_in: StripeStandIn, stripe_customer: str) -> list[dict[str, Any]]:
    found = stand_in.client().v1.invoices.list(params={"customer": stripe_customer, "limit": 100})
    return [
        i.to_dict() for i in found.data if i.to_dict()["metadata"].get("zemfyre_billed_again_from")
    ]


@pytest.mark.parametrize("written_off", [True, False])
def test_an_earlier_periods_unpaid_invoice_survives_reconciliation_of_a_cancel_now(
    stand_in: StripeStandIn, written_off: bool
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stripe_customer = meter_usage(stand_in, customer_id, 6)
    stand_in.decline_charges(stripe_customer)
    handle_inline(stand_in.fail_payment(sub_id))  # the renewal, with the usage, unpaid
    old = str(stripe_subscription(stand_in, customer_id)["latest_invoice"])
    if written_off:
        stand_in.client().v1.invoices.mark_uncollectible(old)
    stand_in.decline_charges(stripe_customer, declines=False)
    handle_inline(stand_in.advance_period(sub_id))  # the next period, paid
    assert _invoice(stand_in, old)["status"] == ("uncollectible" if written_off else "open")
    with session_scope() as session:
        changes.cancel_subscription(
            session, get_gateway(), sub_id, transaction=session_scope, immediately=True
        )
    assert stripe_subscription(stand_in, customer_id)["status"] == "canceled"

    _reconcile(customer_id)

    # Owed for a period served (or written off by an operator): neither voided nor re-billed.
    assert _invoice(stand_in, old)["status"] == ("uncollectible" if written_off else "open")
    assert _billed_again(stand_in, stripe_customer) == []


def test_a_dashboard_cancel_now_leaves_its_open_renewal_alone(stand_in: StripeStandIn) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stand_in.decline_charges(str(stripe_subscription(stand_in, customer_id)["customer"]))
    handle_inline(stand_in.fail_payment(sub_id))
    renewal = str(stripe_subscription(stand_in, customer_id)["latest_invoice"])
    # Cancelled at once in the Dashboard: `cancellation_requested` too, but not by us.
    stand_in.client().v1.subscriptions.cancel(sub_id)
    assert stripe_subscription(stand_in, customer_id)["cancellation_details"]["reason"] == (
        "cancellation_requested"
    )

    _reconcile(customer_id)

    assert _invoice(stand_in, renewal)["status"] == "open"
