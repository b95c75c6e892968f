"""`billing stripe setup`'s meter and overage prices, and subscriptions carrying two items.

Against the Stripe stand-in through the official SDK: the meter and prices are read back from
Stripe, the subscriptions are what a paid checkout or a plan change made there.
"""

from __future__ import annotations

import pytest

from core.billing import changes
from core.billing.catalogue import setup_catalogue
from core.billing.gateway import get_gateway
from core.billing.metering.meters import overage_lookup_key, setup_metering
from core.billing.sync import subscription_plan
from core.db import session_scope
from core.plans import Plan
from core.settings import get_settings
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_row,
)
from tests.stripe_stand_in import StripeStandIn


def _creates(stand_in: StripeStandIn, path: str) -> int:
    return sum(1 for r in stand_in.requests if r.method == "POST" and r.path == path)


def test_setup_creates_the_meter_and_an_overage_price_per_metered_plan(
    stand_in: StripeStandIn,
) -> None:
    stand_in.reset()
    gateway = get_gateway()
    setup_catalogue(gateway)

    made = setup_metering(gateway)

    assert made.meter.created and all(price.created for price in made.prices)
    client = stand_in.client()
    (meter,) = client.v1.billing.meters.list().data
    assert meter.id == made.meter.meter_id
    assert meter.event_name == get_settings().stripe_meter_event_name == "zemfyre_device_overage"
    assert meter.default_aggregation.formula == "sum"
    assert meter.customer_mapping.to_dict() == {
        "event_payload_key": "stripe_customer_id",
        "type": "by_id",
    }
    assert meter.value_settings.event_payload_key == "value"
    cents = {"starter": 10, "professional": 7}
    assert {price.plan for price in made.prices} == {"starter", "professional"}
    for line in made.prices:
        price = client.v1.prices.retrieve(line.price_id)
        assert price.recurring.usage_type == "metered"
        assert price.recurring.meter == meter.id
        assert price.unit_amount == line.unit_amount == cents[line.plan]
        assert price.lookup_key == overage_lookup_key(Plan(line.plan))
        flat = client.v1.prices.list(params={"lookup_keys": [f"zemfyre_{line.plan}_monthly"]}).data[
            0
        ]
        assert price.product == flat.product  # on the plan's own product
    assert "STRIPE_METER_EVENT_NAME=zemfyre_device_overage" in made.settings_lines
    assert any(
        line.startswith("STRIPE_OVERAGE_PRICE_STARTER=price_") for line in made.settings_lines
    )


def test_setup_again_finds_everything_and_creates_nothing(stand_in: StripeStandIn) -> None:
    first = setup_metering(get_gateway())
    meters, prices = _creates(stand_in, "/v1/billing/meters"), _creates(stand_in, "/v1/prices")

    again = setup_metering(get_gateway())

    assert again == first and not again.meter.created
    assert not any(price.created for price in again.prices)
    assert _creates(stand_in, "/v1/billing/meters") == meters
    assert _creates(stand_in, "/v1/prices") == prices


def test_checkout_puts_the_flat_and_the_overage_price_on_the_subscription(
    stand_in: StripeStandIn,
) -> None:
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "starter"))

    checkout = next(
        r for r in stand_in.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"
    )
    flat_line, overage_line = checkout.params["line_items"]
    assert flat_line["quantity"] == "1"
    assert "quantity" not in overage_line  # Stripe refuses a quantity on a metered price
    sub = stripe_subscription(stand_in, customer_id)
    prices = [item["price"] for item in sub["items"]["data"]]
    assert [price["recurring"]["usage_type"] for price in prices] == ["licensed", "metered"]
    assert prices[1]["lookup_key"] == "zemfyre_starter_device_overage"
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    assert row["stripe_price_id"] == prices[0]["id"] == get_settings().stripe_price_starter


def test_the_plan_is_read_from_the_flat_item_whatever_the_order(stand_in: StripeStandIn) -> None:
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "professional"))
    sub = stripe_subscription(stand_in, customer_id)
    sub["items"]["data"].reverse()  # the metered item first

    plan, price_id = subscription_plan(sub)

    assert plan is Plan.PROFESSIONAL
    assert price_id == get_settings().stripe_price_professional


def test_a_plan_change_moves_the_overage_item_to_the_new_plans_price(
    stand_in: StripeStandIn,
) -> None:
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "starter"))

    with session_scope() as session:
        changes.change_plan(
            session, get_gateway(), customer_id, "professional", transaction=session_scope
        )

    sub = stripe_subscription(stand_in, customer_id)
    lookup_keys = sorted(item["price"]["lookup_key"] for item in sub["items"]["data"])
    assert lookup_keys == ["zemfyre_professional_device_overage", "zemfyre_professional_monthly"]
    assert subscription_row(customer_id)["plan"] == "professional"


def test_setup_puts_overage_prices_on_a_hand_made_catalogues_products(
    stand_in: StripeStandIn,
) -> None:
    """Products made by hand in the Dashboard carry none of our metadata; the flat prices are
    found by lookup key, and each overage price goes onto its flat price's product."""
    stand_in.reset()
    client = stand_in.client()
    products = {}
    for plan, cents in (("starter", 2900), ("professional", 9900)):
        product = client.v1.products.create(params={"name": f"Devices {plan} (by hand)"})
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": cents,
                "recurring": {"interval": "month"},
                "lookup_key": f"zemfyre_{plan}_monthly",
            }
        )
        products[plan] = product.id
    gateway = get_gateway()
    assert not any(line.created for line in setup_catalogue(gateway))

    made = setup_metering(gateway)

    assert {line.plan for line in made.prices if line.created} == {"starter", "professional"}
    for line in made.prices:
        assert client.v1.prices.retrieve(line.price_id).product == products[line.plan]
    assert len(client.v1.products.list().data) == 2  # no product of ours beside them


def _hand_made_flat_prices(stand_in: StripeStandIn, currency: str, interval: str) -> None:
    stand_in.reset()
    client = stand_in.client()
    for plan, cents in (("starter", 2900), ("professional", 9900)):
        product = client.v1.products.create(params={"name": f"Devices {plan} (by hand)"})
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": currency,
                "unit_amount": cents,
                "recurring": {"interval": interval},
                "tax_behavior": "exclusive",
                "lookup_key": f"zemfyre_{plan}_monthly",
            }
        )


def test_overage_prices_take_the_flat_prices_currency_and_tax_behaviour(
    stand_in: StripeStandIn,
) -> None:
    """A EUR catalogue gets EUR overage prices: Stripe refuses a subscription whose items are
    in different currencies, so a USD overage price would make every checkout fail."""
    _hand_made_flat_prices(stand_in, "eur", "month")

    made = setup_metering(get_gateway())

    client = stand_in.client()
    for line in made.prices:
        price = client.v1.prices.retrieve(line.price_id)
        assert (price.currency, price.tax_behavior) == ("eur", "exclusive")


def test_a_yearly_flat_price_is_refused_naming_its_setting(stand_in: StripeStandIn) -> None:
    from core.billing.gateway import StripeNotConfiguredError

    _hand_made_flat_prices(stand_in, "usd", "year")

    with pytest.raises(StripeNotConfiguredError) as refused:
        setup_metering(get_gateway())
    assert refused.value.field == "STRIPE_PRICE_STARTER"
    assert "not billed monthly" in refused.value.message
    assert (
        not stand_in.client()
        .v1.prices.list(params={"lookup_keys": ["zemfyre_starter_device_overage"]})
        .data
    )


def test_a_classic_mode_subscription_is_migrated_to_flexible_before_its_overage_item_moves(
    stand_in: StripeStandIn,
) -> None:
    """Classic billing mode never bills the usage of a metered price swapped or removed
    mid-period: the subscription is migrated to flexible first (one way), then the item goes
    with `create_prorations`, which bills its usage."""
    from core.billing.metering.meters import billing_mode, overage_item
    from core.billing.metering.moves import fit_overage_item

    client = stand_in.client()
    customer = client.v1.customers.create(params={"email": "classic@example.com"})
    keys = ["zemfyre_starter_monthly", "zemfyre_starter_device_overage"]
    flat, metered = (
        client.v1.prices.list(params={"lookup_keys": [key]}).data[0].id for key in keys
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": flat, "quantity": 1}, {"price": metered}],
            "billing_mode": {"type": "classic"},
        }
    ).to_dict()

    emptied = fit_overage_item(session_scope, get_gateway(), sub, None)

    assert emptied is not None and overage_item(emptied) is None
    assert billing_mode(get_gateway().retrieve_subscription(sub["id"])) == "flexible"
