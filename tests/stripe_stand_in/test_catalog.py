"""The stand-in's customers, products, prices and promotion codes through the real SDK: their
shapes, lookup keys, filters and list cursors."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn


def test_customer_product_price_shapes(client: stripe.StripeClient, catalog: Any) -> None:
    customer = client.v1.customers.retrieve(catalog["customer"].id)
    assert customer.object == "customer" and customer.id.startswith("cus_")
    assert customer.email == "ada@example.com"
    assert customer.metadata.to_dict() == {"customerId": "c-1"}
    assert customer.livemode is False and isinstance(customer.created, int)
    price = client.v1.prices.retrieve(catalog["monthly"].id)
    assert price.object == "price" and price.type == "recurring"
    assert price.recurring.interval == "month" and price.recurring.interval_count == 1
    assert price.product == catalog["product"].id and price.unit_amount == 4900
    updated = client.v1.customers.update(
        customer.id, params={"name": "Ada L.", "metadata": {"customerId": "", "tier": "gold"}}
    )
    assert updated.name == "Ada L." and updated.metadata.to_dict() == {"tier": "gold"}


def test_prices_listed_by_lookup_keys(client: stripe.StripeClient, catalog: Any) -> None:
    found = client.v1.prices.list(
        params={"lookup_keys": ["professional_monthly", "missing"], "expand": ["data.product"]}
    )
    assert found.object == "list" and found.url == "/v1/prices" and found.has_more is False
    assert [p.id for p in found.data] == [catalog["monthly"].id]
    assert found.data[0].product.name == "Professional"
    both = client.v1.prices.list(params={"product": catalog["product"].id, "active": True})
    assert {p.id for p in both.data} == {catalog["monthly"].id, catalog["yearly"].id}


def test_lookup_key_clash_and_transfer(client: stripe.StripeClient, catalog: Any) -> None:
    params = {
        "product": catalog["product"].id,
        "currency": "usd",
        "unit_amount": 5900,
        "recurring": {"interval": "month"},
        "lookup_key": "professional_monthly",
    }
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.prices.create(params=params)
    assert raised.value.param == "lookup_key" and raised.value.http_status == 400
    moved = client.v1.prices.create(params={**params, "transfer_lookup_key": True})
    old = client.v1.prices.retrieve(catalog["monthly"].id)
    assert moved.lookup_key == "professional_monthly" and old.lookup_key is None


def test_promotion_codes_filter_by_code_and_active(client: stripe.StripeClient) -> None:
    coupon = client.v1.coupons.create(params={"percent_off": 25, "duration": "once"})
    assert coupon.object == "coupon" and coupon.percent_off == 25 and coupon.valid
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "LAUNCH25"}
    )
    assert promo.promotion.coupon == coupon.id and promo.coupon.id == coupon.id
    assert [p.id for p in client.v1.promotion_codes.list(params={"code": "launch25"}).data] == [
        promo.id
    ]
    client.v1.promotion_codes.update(promo.id, params={"active": False})
    assert client.v1.promotion_codes.list(params={"active": True}).data == []


def test_list_cursors_and_expand_errors(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    ids = [client.v1.customers.create(params={"name": f"n{i}"}).id for i in range(5)]
    newest_first = list(reversed(ids))
    page = client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in page.data] == newest_first[:2] and page.has_more
    after = client.v1.customers.list(params={"limit": 2, "starting_after": newest_first[1]})
    assert [c.id for c in after.data] == newest_first[2:4] and after.has_more
    before = client.v1.customers.list(params={"limit": 2, "ending_before": newest_first[4]})
    assert [c.id for c in before.data] == newest_first[2:4] and before.has_more
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.retrieve(ids[0], params={"expand": ["nothing"]})
    assert raised.value.param == "expand[0]"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.list(params={"limit": 101})
