"""Fixtures and helpers of the stand-in's own tests: a stand-in of their own, a catalog and
subscriptions on it, and the SDK's reference shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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


def recurring_price(
    client: stripe.StripeClient, product: str, amount: int, interval: str = "month", **extra: Any
) -> Any:
    """A USD price of the product, `amount` cents every `interval` (`extra`: more parameters)."""
    params: dict[str, Any] = {
        "product": product,
        "currency": "usd",
        "unit_amount": amount,
        "recurring": {"interval": interval},
        **extra,
    }
    return client.v1.prices.create(params=params)


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    """A customer and a product with a monthly and a yearly price (by lookup key)."""
    customer = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"customerId": "c-1"}}
    )
    product = client.v1.products.create(params={"name": "Professional"})
    monthly = recurring_price(client, product.id, 4900, lookup_key="professional_monthly")
    yearly = recurring_price(client, product.id, 49000, "year", lookup_key="professional_yearly")
    return {"customer": customer, "product": product, "monthly": monthly, "yearly": yearly}


def open_checkout(client: stripe.StripeClient, catalog: dict[str, Any], **extra: Any) -> Any:
    """A subscription Checkout Session of the catalog's customer for its monthly price."""
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": catalog["customer"].id,
        "line_items": [{"price": catalog["monthly"].id, "quantity": 1}],
        "success_url": "https://billing.example/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://billing.example/cancel",
        "metadata": {"customerId": "c-1", "plan": "professional"},
        "subscription_data": {"metadata": {"customerId": "c-1", "seats": "5"}},
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)


def subscribe(stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any) -> str:
    """The id of a subscription made by a completed Checkout Session."""
    session = open_checkout(client, catalog)
    events = stand_in.complete_checkout(session.id)
    return events[0]["data"]["object"]["subscription"]


def reference_fields(cls: type) -> set[str]:
    """The fields stripe-python (the tested SDK) declares for an object at its API version."""
    fields: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        fields.update(getattr(klass, "__annotations__", {}))
    return {name for name in fields if not name.startswith("_") and name[0].islower()}
