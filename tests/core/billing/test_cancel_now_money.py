"""What cancelling now charges: the final invoice (usage to date, pending prorations) is collected
like any invoice, and only invoices for time that will not be served are voided."""

from __future__ import annotations

from typing import Any

import pytest

from core.billing import changes
from core.billing.gateway import StripeUnavailableError, get_gateway
from core.db import session_scope
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    meter_usage,
    paying_customer,
    stripe_subscription,
    subscription_invoices,
)
from tests.stripe_stand_in import StripeStandIn


def _cancel_now(sub_id: str) -> changes.SubscriptionChange:
    with session_scope() as session:
        return changes.cancel_subscription(
            session, get_gateway(), sub_id, immediately=True, transaction=session_scope
        )


def _invoice(stand_in: StripeStandIn, invoice_id: str) -> dict[str, Any]:
    return stand_in.client().v1.invoices.retrieve(invoice_id).to_dict()


def _declining_after_usage(stand_in: StripeStandIn, device_days: int) -> tuple[str, str, str]:
    """A paying starter customer who used `device_days` of overage and whose card now declines:
    (customer id, Stripe subscription id, Stripe customer id)."""
    customer_id, sub_id = paying_customer(stand_in)
    stripe_customer = meter_usage(stand_in, customer_id, device_days)
    stand_in.decline_charges(stripe_customer)
    return customer_id, sub_id, stripe_customer


def test_a_declined_final_invoice_of_a_paid_period_stays_open_for_collection(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, stripe_customer = _declining_after_usage(stand_in, 5)
    mark = len(stand_in.events)

    assert _cancel_now(sub_id).status == "canceled"
    handle_inline(stand_in.events[mark:])

    final = _invoice(stand_in, stripe_subscription(stand_in, customer_id)["latest_invoice"])
    # The device-days used this period are billed and still owed, not voided.
    assert final["status"] == "open" and final["amount_remaining"] > 0
    assert stand_in.subscriptions.usage.billed(stripe_customer) == 5
    # Running it again voids nothing either.
    _cancel_now(sub_id)
    assert _invoice(stand_in, final["id"])["status"] == "open"
    voids = [r for r in stand_in.requests if r.method == "POST" and r.path.endswith("/void")]
    assert voids == []


def test_cancelling_a_paid_period_now_voids_an_upgrade_never_paid(stand_in: StripeStandIn) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stripe_customer = stripe_subscription(stand_in, customer_id)["customer"]
    stand_in.decline_charges(stripe_customer)
    with session_scope() as session:
        assert changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        ).pending_payment
    upgrade_id = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    assert _invoice(stand_in, upgrade_id)["status"] == "open"

    _cancel_now(sub_id)

    # The bigger plan will never be served: its invoice can no longer be collected.
    assert _invoice(stand_in, upgrade_id)["status"] == "void"
    assert [
        i["status"]
        for i in subscription_invoices(stand_in, sub_id)
        if i["billing_reason"] == "subscription_create"
    ] == ["paid"]


def _owed_or_paid(stand_in: StripeStandIn, stripe_customer: str) -> list[dict[str, Any]]:
    found = stand_in.client().v1.invoices.list(params={"customer": stripe_customer, "limit": 100})
    return [i.to_dict() for i in found.data if i.status != "void"]


def test_cancelling_a_past_due_subscription_now_bills_the_overage_it_used(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id, stripe_customer = _declining_after_usage(stand_in, 6)
    handle_inline(stand_in.fail_payment(sub_id))  # the renewal bills the 6 in arrears, unpaid
    renewal = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    overage = sum(
        line["amount"]
        for line in _invoice(stand_in, renewal)["lines"]["data"]
        if line["period"]["end"] <= line["period"]["start"] + 40 * 86400 and line["quantity"] == 6
    )
    assert overage > 0

    _cancel_now(sub_id)

    # The renewal (next month's fee) is void; the overage used before it is billed again, and
    # what was used since is billed on the final invoice: neither is lost with the renewal.
    assert _invoice(stand_in, renewal)["status"] == "void"
    billed = _owed_or_paid(stand_in, stripe_customer)
    again = [i for i in billed if i["metadata"].get("zemfyre_billed_again_from") == renewal]
    assert [i["amount_due"] for i in again] == [overage]
    # Usage since the renewal goes on the final invoice (invoice_now); no credit for the unpaid
    # period's unused time (no prorate).
    cancel = [r for r in stand_in.requests if r.method == "DELETE" and r.path.endswith(sub_id)]
    assert cancel[-1].params.get("invoice_now") in (True, "true")
    assert "prorate" not in cancel[-1].params
    # Running it again bills nothing twice.
    _cancel_now(sub_id)
    assert len(_owed_or_paid(stand_in, stripe_customer)) == len(billed)


def test_deactivating_again_after_a_failed_void_reports_the_cancel_and_voids(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    handle_inline(stand_in.fail_payment(sub_id))
    renewal = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    stand_in.fail_next_requests(50, 503, path_prefix=f"/v1/invoices/{renewal}")
    try:
        with pytest.raises(StripeUnavailableError), session_scope() as session:
            changes.deactivate_customer(
                session, get_gateway(), customer_id, immediately=True, transaction=session_scope
            )
    finally:
        stand_in.fail_next_requests(0)
    assert stripe_subscription(stand_in, customer_id)["status"] == "canceled"

    with session_scope() as session:
        retried = changes.deactivate_customer(
            session, get_gateway(), customer_id, immediately=True, transaction=session_scope
        )

    assert retried.stripe_canceled and retried.plan == "trial"
    assert _invoice(stand_in, renewal)["status"] == "void"
