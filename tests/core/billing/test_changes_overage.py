"""Plan changes move the overage item without asking Stripe for what a pending update refuses.

An upgrade is a pending update (`pending_if_incomplete`), which Stripe only lets change the price
or quantity of existing items: the overage item is added or removed in ordinary updates, ordered
so the customer never carries an overage item on a plan that does not meter it.
"""

from __future__ import annotations

from typing import Any

from core.billing import changes, reconcile
from core.billing.gateway import get_gateway
from core.db import session_scope
from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    license_claims,
    meter_usage,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_row,
)
from tests.stripe_stand_in import StripeStandIn


def _paying(stand_in: StripeStandIn, plan: str = "starter") -> tuple[str, str]:
    _enterprise_price(stand_in)
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, plan))
    return customer_id, subscription_row(customer_id)["stripe_subscription_id"]


def _enterprise_price(stand_in: StripeStandIn) -> None:
    """Enterprise is sold at a price made per customer; one with the plan's lookup key here."""
    client = stand_in.client()
    if client.v1.prices.list(params={"lookup_keys": ["zemfyre_enterprise_monthly"]}).data:
        return
    product = client.v1.products.create(
        params={"name": "Zemfyre Enterprise", "metadata": {"zemfyre_plan": "enterprise"}}
    )
    client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 50000,
            "recurring": {"interval": "month"},
            "lookup_key": "zemfyre_enterprise_monthly",
        }
    )


def _lookup_keys(stand_in: StripeStandIn, customer_id: str) -> list[str]:
    sub = stripe_subscription(stand_in, customer_id)
    return sorted(str(item["price"]["lookup_key"]) for item in sub["items"]["data"])


def _drop_overage_item(stand_in: StripeStandIn, customer_id: str) -> None:
    """Make the subscription one sold before the overage prices existed: the flat item only."""
    sub = stripe_subscription(stand_in, customer_id)
    items = sub["items"]["data"]
    metered = next(i for i in items if i["price"]["recurring"]["usage_type"] == "metered")
    stand_in.client().v1.subscriptions.update(
        sub["id"], params={"items": [{"id": metered["id"], "deleted": True}]}
    )


def _pending_updates(stand_in: StripeStandIn, sub_id: str) -> list[dict[str, Any]]:
    return [
        r.params
        for r in stand_in.requests
        if r.method == "POST"
        and r.path == f"/v1/subscriptions/{sub_id}"
        and r.params.get("payment_behavior") == "pending_if_incomplete"
    ]


def _decline(stand_in: StripeStandIn, customer_id: str, declines: bool = True) -> None:
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    stand_in.decline_charges(str(stripe_customer), declines)


def test_an_upgrade_to_enterprise_removes_the_overage_item_outside_the_pending_update(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "enterprise", transaction=session_scope
        )

    assert change.plan == "enterprise" and not change.pending_payment
    assert _lookup_keys(stand_in, customer_id) == ["zemfyre_enterprise_monthly"]
    (pending,) = _pending_updates(stand_in, sub_id)
    assert all("deleted" not in item and "id" in item for item in pending["items"])
    assert license_claims(customer_id)["plan"] == "enterprise"


def test_an_unpaid_upgrade_to_enterprise_keeps_the_metered_plan_and_its_overage_item(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "professional")
    _decline(stand_in, customer_id)

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "enterprise", transaction=session_scope
        )

    # Still professional until paid: its overage is still metered and billed.
    assert change.pending_payment and change.plan == "professional"
    assert _lookup_keys(stand_in, customer_id) == [
        "zemfyre_professional_device_overage",
        "zemfyre_professional_monthly",
    ]


def test_an_older_subscription_without_an_overage_item_gets_one_on_an_upgrade(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    _drop_overage_item(stand_in, customer_id)
    assert _lookup_keys(stand_in, customer_id) == ["zemfyre_starter_monthly"]

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )

    assert change.plan == "professional" and not change.pending_payment
    assert _lookup_keys(stand_in, customer_id) == [
        "zemfyre_professional_device_overage",
        "zemfyre_professional_monthly",
    ]
    (pending,) = _pending_updates(stand_in, sub_id)
    assert all("id" in item for item in pending["items"])  # only swaps, no item added


def test_a_declined_upgrade_of_an_older_subscription_moves_both_items_once_paid(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    _drop_overage_item(stand_in, customer_id)
    _decline(stand_in, customer_id)

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )

    # Unpaid: the customer stays on starter, now metered at starter's overage price.
    assert change.pending_payment and change.plan == "starter"
    assert _lookup_keys(stand_in, customer_id) == [
        "zemfyre_starter_device_overage",
        "zemfyre_starter_monthly",
    ]
    _decline(stand_in, customer_id, False)
    handle_inline(stand_in.pay_invoice(sub_id))
    # Paid: both items moved together with the pending update.
    assert _lookup_keys(stand_in, customer_id) == [
        "zemfyre_professional_device_overage",
        "zemfyre_professional_monthly",
    ]
    assert subscription_row(customer_id)["plan"] == "professional"


def test_a_downgrade_from_enterprise_adds_the_overage_item_in_the_same_update(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    with session_scope() as session:
        changes.change_plan(session, get_gateway(), sub_id, "enterprise", transaction=session_scope)

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )

    assert change.plan == "professional"
    assert _lookup_keys(stand_in, customer_id) == [
        "zemfyre_professional_device_overage",
        "zemfyre_professional_monthly",
    ]


def test_an_upgrade_to_enterprise_paid_later_loses_its_overage_item_at_reconciliation(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    _decline(stand_in, customer_id)
    with session_scope() as session:
        changes.change_plan(session, get_gateway(), sub_id, "enterprise", transaction=session_scope)
    _decline(stand_in, customer_id, False)
    handle_inline(stand_in.pay_invoice(sub_id))
    # Stripe applied the pending swap; the overage item could not go with it.
    assert subscription_row(customer_id)["plan"] == "enterprise"
    assert "zemfyre_starter_device_overage" in _lookup_keys(stand_in, customer_id)

    with session_scope() as session:
        assert (
            reconcile.repair_customer(
                session, get_gateway(), customer_id, transaction=session_scope
            )
            == 1
        )

    assert _lookup_keys(stand_in, customer_id) == ["zemfyre_enterprise_monthly"]
    with session_scope() as session:
        assert (
            reconcile.repair_customer(
                session, get_gateway(), customer_id, transaction=session_scope
            )
            == 0
        )


def test_an_upgrade_to_enterprise_bills_the_overage_metered_before_it(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    stripe_customer = meter_usage(stand_in, customer_id, 7)

    with session_scope() as session:
        changes.change_plan(session, get_gateway(), sub_id, "enterprise", transaction=session_scope)
    assert _lookup_keys(stand_in, customer_id) == ["zemfyre_enterprise_monthly"]
    stand_in.advance_period(sub_id)

    # The 7 device-days at the starter overage price reach an invoice, not lost with the item.
    assert stand_in.subscriptions.usage.billed(stripe_customer) == 7


def test_reconciliation_removing_a_leftover_overage_item_bills_its_usage(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = _paying(stand_in, "starter")
    _decline(stand_in, customer_id)
    with session_scope() as session:
        changes.change_plan(session, get_gateway(), sub_id, "enterprise", transaction=session_scope)
    _decline(stand_in, customer_id, False)
    handle_inline(stand_in.pay_invoice(sub_id))
    stripe_customer = meter_usage(stand_in, customer_id, 4)

    with session_scope() as session:
        assert (
            reconcile.repair_customer(
                session, get_gateway(), customer_id, transaction=session_scope
            )
            == 1
        )
    stand_in.advance_period(sub_id)

    assert stand_in.subscriptions.usage.billed(stripe_customer) == 4
