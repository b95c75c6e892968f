"""A plan change Stripe applied is reported as applied, and asking for it again charges nothing
twice: the extra read after a change may fail without failing the change, and an upgrade waiting
for its invoice is never sent again."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.billing import changes
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.errors import ConflictError
from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    paying_customer,
    stripe_subscription,
    subscription_invoices,
    subscription_row,
)
from tests.stripe_stand_in import StripeStandIn


def _change(sub_id: str, plan: str) -> changes.SubscriptionChange:
    with session_scope() as session:
        return changes.change_plan(session, get_gateway(), sub_id, plan, transaction=session_scope)


def _upgrade_invoices(stand_in: StripeStandIn, sub_id: str) -> list[dict]:
    return [
        i
        for i in subscription_invoices(stand_in, sub_id)
        if i["billing_reason"] == "subscription_update" and i["amount_due"] > 0
    ]


def test_a_failed_read_after_an_applied_upgrade_is_no_failure(stand_in: StripeStandIn) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    paid_through = pg_scalar(
        f"SELECT paid_through_at FROM subscriptions WHERE customer_id = '{customer_id}'"
    )
    assert isinstance(paid_through, datetime)
    handle_inline(stand_in.renew_awaiting_payment(sub_id))
    # Stripe applies the upgrade; the invoice list read after it (the renewal is not the latest
    # invoice any more) fails on every try.
    stand_in.fail_next_requests(50, 503, path_prefix="/v1/invoices")
    try:
        change = _change(sub_id, "professional")
    finally:
        stand_in.fail_next_requests(0)

    assert change.plan == "professional" and not change.pending_payment
    assert subscription_row(customer_id)["plan"] == "professional"
    assert len(_upgrade_invoices(stand_in, sub_id)) == 1
    # Not read, so not judged paid: the draft renewal's period is not granted.
    assert (
        pg_scalar(f"SELECT paid_through_at FROM subscriptions WHERE customer_id = '{customer_id}'")
        == paid_through
    )


def test_asking_again_for_an_upgrade_waiting_for_payment_invoices_it_once(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    stand_in.decline_charges(stripe_subscription(stand_in, customer_id)["customer"])
    assert _change(sub_id, "professional").pending_payment

    again = _change(sub_id, "professional")

    assert again.pending_payment and again.plan == "starter"
    assert len(_upgrade_invoices(stand_in, sub_id)) == 1
    # Another change waits until the upgrade is paid or has expired.
    with pytest.raises(ConflictError) as refused:
        _change(sub_id, "starter")
    assert refused.value.field == "plan"
    assert stripe_subscription(stand_in, customer_id)["pending_update"] is not None
