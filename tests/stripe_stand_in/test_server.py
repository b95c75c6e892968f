"""The stand-in's server and wire format, driven through the real `stripe` SDK as the project's
gateway drives Stripe: start and stop, form bodies, the SDK's global configuration, concurrent
requests and reset."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn, start_stand_in
from tests.stripe_stand_in.forms import parse_query


def test_start_gives_a_local_url_and_stop_is_idempotent() -> None:
    server = start_stand_in()
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    server.stop()
    server.stop()
    assert not server.running
    with StripeStandIn() as again:
        assert again.running
    assert not again.running


def test_form_parser_builds_nested_dicts_and_lists() -> None:
    query = (
        "metadata[customerId]=x&line_items[0][price]=price_1&line_items[0][quantity]=2"
        "&discounts[0][promotion_code]=promo_1&expand[]=a&expand[]=b&items[0][id]=si_1"
        "&metadata[0]=digit-key&created[gte]=10&empty="
    )
    assert parse_query(query) == {
        "metadata": {"customerId": "x", "0": "digit-key"},
        "line_items": [{"price": "price_1", "quantity": "2"}],
        "discounts": [{"promotion_code": "promo_1"}],
        "expand": ["a", "b"],
        "items": [{"id": "si_1"}],
        "created": {"gte": "10"},
        "empty": "",
    }


def test_sdk_sends_indexed_arrays_and_form_bodies(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    client.v1.prices.list(params={"lookup_keys": ["professional_monthly"], "active": True})
    last = stand_in.requests[-1]
    assert (last.method, last.path) == ("GET", "/v1/prices")
    assert last.params == {"lookup_keys": ["professional_monthly"], "active": "true"}
    assert last.stripe_version == stripe.api_version
    created = [r for r in stand_in.requests if r.method == "POST"]
    assert all(r.idempotency_key for r in created)


def test_legacy_global_configuration(
    stand_in: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", "sk_test_global")
    monkeypatch.setattr(stripe, "api_base", stand_in.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    customer = stripe.Customer.create(email="global@example.com")
    assert stripe.Customer.retrieve(customer.id).email == "global@example.com"
    assert stand_in.requests[-1].path == f"/v1/customers/{customer.id}"


def test_reset_and_concurrent_requests(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    def create(index: int) -> None:
        client.v1.customers.create(params={"email": f"user{index}@example.com"})

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = {c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()}
    assert len(ids) == 20 and len(stand_in.events) == 20
    stand_in.reset()
    assert stand_in.events == [] and stand_in.requests == []
    assert client.v1.customers.list().data == []
