"""The stand-in's errors and injected faults through the real SDK: Stripe's error shapes, failed
requests rolled back, failing, down and slowed paths."""

from __future__ import annotations

import threading
import time

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn


def test_error_paths_raise_sdk_exceptions(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    anonymous = stripe.StripeClient(
        "not-a-key", base_addresses={"api": stand_in.url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as auth:
        anonymous.v1.customers.list()
    assert auth.value.http_status == 401
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_missing")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert missing.value.json_body["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(params={"emial": "typo@example.com"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.http_status == 400 and unknown.value.param == "emial"
    with pytest.raises(stripe.InvalidRequestError) as bad_ref:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": "price_x", "quantity": 1}]}
        )
    assert bad_ref.value.param == "line_items[0][price]" and bad_ref.value.http_status == 400


def test_failed_requests_roll_back(stand_in: StripeStandIn, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            params={"product_data": {"name": "Orphan"}, "currency": "usd"}  # no unit_amount
        )
    assert client.v1.products.list().data == [] and stand_in.events == []


def test_fail_next_requests_and_down(stand_in: StripeStandIn, client: stripe.StripeClient) -> None:
    stand_in.fail_next_requests(1, status=500)
    with pytest.raises(stripe.APIError) as raised:
        client.v1.customers.list()
    assert raised.value.http_status == 500
    stand_in.fail_next_requests(1)
    retrying = stand_in.client(max_network_retries=2)
    customer = retrying.v1.customers.create(params={"email": "retry@example.com"})
    attempts = [r for r in stand_in.requests if r.method == "POST"]
    assert [r.status for r in attempts] == [500, 200]
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert [c.id for c in client.v1.customers.list().data] == [customer.id]
    stand_in.set_down(True)
    with pytest.raises(stripe.APIError) as down:
        client.v1.customers.list()
    assert down.value.http_status == 503
    stand_in.set_down(False)
    assert client.v1.customers.list().data[0].id == customer.id


def test_set_delay_slows_only_matching_paths(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"email": "slow@example.com"})
    stand_in.set_delay(0.5, "/v1/customers/")
    answered: list[str] = []
    slow = threading.Thread(
        target=lambda: answered.append(client.v1.customers.retrieve(customer.id).id)
    )
    slow.start()
    # While the retrieve is held back, a path outside the prefix is answered at once.
    deadline = time.monotonic() + 5
    while stand_in.delayed_started < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stand_in.delayed_started == 1
    assert client.v1.customers.list().data[0].id == customer.id
    assert answered == []
    slow.join(timeout=5)
    assert answered == [customer.id]
    stand_in.set_delay(0)
    assert client.v1.customers.retrieve(customer.id).id == customer.id
    assert stand_in.delayed_started == 1
    stand_in.reset()
    assert stand_in.delayed_started == 0
