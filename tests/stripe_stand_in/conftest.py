"""Fixtures of the stand-in's own tests: a stand-in of their own, and a subscription on it."""

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


@pytest.fixture
def stand_in(stripe_server: StripeStandIn) -> StripeStandIn:
    return stripe_server


@pytest.fixture
def client(stand_in: StripeStandIn) -> stripe.StripeClient:
    return stand_in.client()


@pytest.fixture
def two_item_subscription(stripe_server: StripeStandIn) -> tuple[StripeStandIn, dict, dict]:
    """A monthly subscription to a flat price and an extra item; the prices by name (`bigger`:
    an upgrade of `flat`)."""
    client = stripe_server.client()
    product = client.v1.products.create(params={"name": "Starter"})
    amounts = {"flat": 2900, "bigger": 9900, "extra": 500}
    prices = {
        name: client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": "month"},
            }
        ).id
        for name, amount in amounts.items()
    }
    customer = client.v1.customers.create(params={"email": "p@example.com"})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": prices["flat"]}, {"price": prices["extra"]}],
        }
    ).to_dict()
    return stripe_server, sub, prices
