"""Reconciliation voids the invoices a cancellation of ours left open: cancelling now voids the
unpaid invoices for time that will not be served, and when those voids never ran (a failure
between the calls, no retry), the hourly reconciliation does them, once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core.billing import changes, reconcile
from core.billing.gateway import StripeUnavailableError, get_gateway
from core.customers.lock import get_for_update
from core.db import session_scope
from models import AuditEntry
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


def _billed_again(stand_in: StripeStandIn, stripe_customer: str, renewal: str) -> list[int]:
    found = stand_in.client().v1.invoices.list(params={"customer": stripe_customer, "limit": 100})
    invoices = [i.to_dict() for i in found.data]
    return [
        i["amount_due"]
        for i in invoices
        if i["metadata"].get("zemfyre_billed_again_from") == renewal and i["status"] != "void"
    ]


def _reconcile(customer_id: str) -> int:
    with session_scope() as session:
        return reconcile.repair_customer(
            session, get_gateway(), customer_id, transaction=session_scope
        )


def _audited(customer_id: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.customer_id == customer_id,
                AuditEntry.action == "subscription.void_unserved",
            )
        ).all()
        return [dict(entry.after or {}) for entry in entries]


def test_a_renewal_left_open_by_a_failed_cancel_now_is_voided_once_by_reconciliation(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stripe_customer = meter_usage(stand_in, customer_id, 6)
    stand_in.decline_charges(stripe_customer)
    handle_inline(stand_in.fail_payment(sub_id))  # past_due: the renewal, with the usage, open
    renewal = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    # Stripe cancels, then fails on the renewal: the void never happens, nothing retries.
    stand_in.fail_next_requests(50, 503, path_prefix=f"/v1/invoices/{renewal}")
    try:
        with pytest.raises(StripeUnavailableError), session_scope() as session:
            changes.cancel_subscription(
                session, get_gateway(), sub_id, immediately=True, transaction=session_scope
            )
    finally:
        stand_in.fail_next_requests(0)
    assert stripe_subscription(stand_in, customer_id)["status"] == "canceled"
    assert _invoice(stand_in, renewal)["status"] == "open"  # Smart Retries would charge it

    assert _reconcile(customer_id) >= 1

    # The unserved month is no longer collected; the usage it billed in arrears is, once.
    assert _invoice(stand_in, renewal)["status"] == "void"
    assert len(_billed_again(stand_in, stripe_customer, renewal)) == 1
    assert _audited(customer_id) == [{"subscription": sub_id, "voided": [renewal]}]
    # Again: nothing more voided, billed or audited.
    voids = [r for r in stand_in.requests if r.path.endswith("/void")]
    _reconcile(customer_id)
    assert [r for r in stand_in.requests if r.path.endswith("/void")] == voids
    assert len(_billed_again(stand_in, stripe_customer, renewal)) == 1
    assert len(_audited(customer_id)) == 1


def test_reconciliation_leaves_the_open_invoice_of_a_subscription_stripe_canceled(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stand_in.decline_charges(str(stripe_subscription(stand_in, customer_id)["customer"]))
    handle_inline(stand_in.fail_payment(sub_id))
    renewal = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    # Smart Retries gave up and canceled it: a served period's debt, not ours to forgive.
    handle_inline(stand_in.exhaust_retries(sub_id, outcome="canceled"))

    _reconcile(customer_id)

    assert _invoice(stand_in, renewal)["status"] == "open"
    assert _audited(customer_id) == []


def test_voids_are_audited_even_when_the_customer_lock_after_them_times_out(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stand_in.decline_charges(str(meter_usage(stand_in, customer_id, 6)))
    handle_inline(stand_in.fail_payment(sub_id))
    renewal = stripe_subscription(stand_in, customer_id)["latest_invoice"]
    stand_in.fail_next_requests(50, 503, path_prefix=f"/v1/invoices/{renewal}")
    try:
        with pytest.raises(StripeUnavailableError), session_scope() as session:
            changes.cancel_subscription(
                session, get_gateway(), sub_id, immediately=True, transaction=session_scope
            )
    finally:
        stand_in.fail_next_requests(0)

    # Another worker holds the customer's row: the reconciliation's lock times out after the
    # voids were made in Stripe.
    with session_scope() as holder:
        get_for_update(holder, customer_id)
        with pytest.raises(OperationalError):
            _reconcile(customer_id)

    assert _invoice(stand_in, renewal)["status"] == "void"
    assert _audited(customer_id) == [{"subscription": sub_id, "voided": [renewal]}]
    _reconcile(customer_id)
    assert len(_audited(customer_id)) == 1
