"""The Stripe gateway and catalogue setup against the stand-in."""

from __future__ import annotations

import pytest

from core.billing.catalogue import plan_for_price, setup_catalogue
from core.billing.gateway import (
    StripeNotConfiguredError,
    StripeRequestError,
    StripeUnavailableError,
    get_gateway,
)
from core.plans import Plan
from core.settings import get_settings
from tests.stripe_fixtures import *  # noqa: F403


def test_without_secret_key_stripe_calls_name_the_setting():
    assert get_settings().stripe_secret_key is None
    with pytest.raises(StripeNotConfiguredError) as caught:
        get_gateway()
    assert caught.value.field == "STRIPE_SECRET_KEY"
    assert "STRIPE_SECRET_KEY" in caught.value.message
    assert caught.value.status_code == 503


def test_setup_creates_the_seed_prices_once(stand_in):
    # The fixture ran setup once already; running it again creates nothing.
    posts_before = [r for r in stand_in.requests if r.method == "POST"]
    lines = setup_catalogue(get_gateway())
    assert [r for r in stand_in.requests if r.method == "POST"] == posts_before
    assert [(line.plan, line.unit_amount, line.created) for line in lines] == [
        ("starter", 2900, False),
        ("professional", 9900, False),
    ]
    for line in lines:
        price = stand_in.client().v1.prices.retrieve(line.price_id)
        assert price["currency"] == "usd"
        assert price["recurring"]["interval"] == "month"
        assert price["lookup_key"] == f"zemfyre_{line.plan}_monthly"
        assert plan_for_price(price.to_dict()) == Plan(line.plan)
        assert line.setting == f"STRIPE_PRICE_{line.plan.upper()}={line.price_id}"
    products = stand_in.client().v1.products.list()["data"]
    assert sorted(p["name"] for p in products) == ["Zemfyre Professional", "Zemfyre Starter"]


def test_every_create_call_carries_our_idempotency_key(stand_in):
    gateway = get_gateway()
    first = gateway.create_customer(customer_id="cust_a", email="a@example.com", name="A")
    # A retry after a crash (same customer, same data) gets the same Stripe customer back.
    again = gateway.create_customer(customer_id="cust_a", email="a@example.com", name="A")
    assert again["id"] == first["id"]
    assert len(stand_in.client().v1.customers.list()["data"]) == 1
    posts = [r for r in stand_in.requests if r.method == "POST"]
    assert posts and all((r.idempotency_key or "").startswith("zemfyre-") for r in posts)


def test_stripe_failures_become_retryable_or_final_errors(stand_in):
    gateway = get_gateway()
    stand_in.fail_next_requests(1, status=500)
    with pytest.raises(StripeUnavailableError):
        gateway.retrieve_subscription("sub_whatever")
    stand_in.set_down(True)
    with pytest.raises(StripeUnavailableError):
        gateway.find_promotion_code("X")
    stand_in.set_down(False)
    with pytest.raises(StripeRequestError) as caught:
        gateway.retrieve_subscription("sub_missing")
    assert "sub_missing" in caught.value.message


def test_a_price_is_a_plan_by_setting_or_lookup_key():
    assert plan_for_price({"id": "price_x", "lookup_key": "zemfyre_professional_monthly"}) == (
        Plan.PROFESSIONAL
    )
    assert plan_for_price({"id": "price_x", "lookup_key": "something_else"}) is None
    assert plan_for_price(None) is None
