"""The stand-in driven through the real `stripe` SDK, as the project's gateway drives Stripe."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn, start_stand_in
from tests.stripe_stand_in.forms import parse_query

WEBHOOK_SECRET = "whsec_test_standin"


@pytest.fixture
def client(stand_in: StripeStandIn) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_standin", base_addresses={"api": stand_in.url}, max_network_retries=0
    )


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    customer = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"customerId": "c-1"}}
    )
    product = client.v1.products.create(params={"name": "Professional"})
    monthly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 4900,
            "recurring": {"interval": "month"},
            "lookup_key": "professional_monthly",
        }
    )
    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 49000,
            "recurring": {"interval": "year"},
            "lookup_key": "professional_yearly",
        }
    )
    return {"customer": customer, "product": product, "monthly": monthly, "yearly": yearly}


def _checkout(client: stripe.StripeClient, catalog: dict[str, Any], **extra: Any) -> Any:
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


def _subscribe(stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any) -> str:
    session = _checkout(client, catalog)
    events = stand_in.complete_checkout(session.id)
    return events[0]["data"]["object"]["subscription"]


# -- lifecycle and wire format ---------------------------------------------------------


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


# -- catalog ------------------------------------------------------------------------------


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


# -- checkout -----------------------------------------------------------------------------


def test_checkout_session_shape_with_promotion_code(
    client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SAVE20"}
    )
    session = _checkout(client, catalog, discounts=[{"promotion_code": promo.id}])
    assert session.object == "checkout.session" and session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert (session.status, session.payment_status, session.mode) == (
        "open",
        "unpaid",
        "subscription",
    )
    assert session.subscription is None and session.customer == catalog["customer"].id
    assert session.metadata.to_dict() == {"customerId": "c-1", "plan": "professional"}
    assert session.discounts[0].promotion_code == promo.id
    assert (session.amount_subtotal, session.amount_total) == (4900, 3920)
    expanded = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert expanded.line_items.data[0].price.id == catalog["monthly"].id


def test_promotion_codes_and_discounts_are_exclusive(
    client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"amount_off": 500, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _checkout(client, catalog, allow_promotion_codes=True, discounts=[{"coupon": coupon.id}])
    assert "allow_promotion_codes" in str(raised.value.user_message)


def test_complete_checkout_creates_subscription_and_events(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    session = _checkout(client, catalog, allow_promotion_codes=True)
    events = stand_in.complete_checkout(session.id)
    assert [e["type"] for e in events] == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    for event in events:
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["livemode"] is False and event["api_version"] == stand_in.api_version
        assert set(event) >= {"created", "data", "pending_webhooks", "request", "type"}
    completed = client.v1.checkout.sessions.retrieve(session.id)
    assert (completed.status, completed.payment_status) == ("complete", "paid")
    sub = events[1]["data"]["object"]
    assert completed.subscription == sub["id"]
    assert sub["metadata"] == {"customerId": "c-1", "plan": "professional", "seats": "5"}
    invoice = events[2]["data"]["object"]
    assert invoice["status"] == "paid" and invoice["amount_paid"] == 4900
    # The pinned API version's shapes: the invoice names its subscription under `parent`, the
    # period lives on the subscription's items.
    assert "subscription" not in invoice and "current_period_end" not in sub
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    period_end = sub["items"]["data"][0]["current_period_end"]
    assert invoice["lines"]["data"][0]["period"]["end"] == period_end


def test_checkout_list_and_expire(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    first, second = _checkout(client, catalog), _checkout(client, catalog)
    listed = client.v1.checkout.sessions.list(params={"customer": catalog["customer"].id})
    assert [s.id for s in listed.data] == [second.id, first.id]
    expired = client.v1.checkout.sessions.expire(first.id)
    assert expired.status == "expired"
    assert stand_in.events[-1]["type"] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(first.id)


# -- subscriptions ------------------------------------------------------------------------


def test_subscription_shape(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id, params={"expand": ["latest_invoice"]})
    assert sub.object == "subscription" and sub.status == "active"
    assert sub.customer == catalog["customer"].id and sub.cancel_at_period_end is False
    item = sub["items"].data[0]
    assert sub["items"].object == "list" and item.object == "subscription_item"
    assert item.price.id == catalog["monthly"].id and item.price.object == "price"
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in sub and "current_period_start" not in sub
    assert sub.canceled_at is None and sub.trial_end is None
    assert sub.latest_invoice.object == "invoice" and sub.latest_invoice.status == "paid"
    listed = client.v1.subscriptions.list(params={"customer": catalog["customer"].id})
    assert [s.id for s in listed.data] == [sub_id]
    customer = client.v1.customers.retrieve(
        catalog["customer"].id, params={"expand": ["subscriptions"]}
    )
    assert [s.id for s in customer.subscriptions.data] == [sub_id]


def test_update_price_with_proration(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id)
    item_id = sub["items"].data[0].id
    team = client.v1.prices.create(
        params={
            "product": catalog["product"].id,
            "currency": "usd",
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
        }
    )
    updated = client.v1.subscriptions.update(
        sub_id,
        params={
            "items": [{"id": item_id, "price": team.id}],
            "proration_behavior": "always_invoice",
            "metadata": {"seats": "10"},
        },
    )
    assert updated["items"].data[0].id == item_id and updated["items"].data[0].price.id == team.id
    assert updated["items"].data[0].current_period_end == sub["items"].data[0].current_period_end
    kinds = [e["type"] for e in stand_in.events[-3:]]
    assert kinds == ["customer.subscription.updated", "invoice.paid", "invoice.payment_succeeded"]
    change = stand_in.events[-3]["data"]
    old_items = change["previous_attributes"]["items"]["data"]
    assert old_items[0]["price"]["id"] == catalog["monthly"].id
    assert change["object"]["metadata"]["seats"] == "10"
    proration = stand_in.events[-1]["data"]["object"]
    assert proration["billing_reason"] == "subscription_update"
    assert 0 < proration["amount_paid"] <= 9900 - 4900
    quiet = client.v1.subscriptions.update(
        sub_id, params={"items": [{"id": item_id, "price": catalog["monthly"].id}]}
    )
    assert quiet.latest_invoice == proration["id"]
    yearly = client.v1.subscriptions.update(
        sub_id,
        params={
            "items": [{"id": item_id, "price": catalog["yearly"].id}],
            "proration_behavior": "create_prorations",
        },
    )
    yearly_item = yearly["items"].data[0]
    assert yearly_item.current_period_end - yearly_item.current_period_start >= 365 * 86400
    assert yearly.billing_cycle_anchor == yearly_item.current_period_start
    assert yearly.latest_invoice != proration["id"]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update(sub_id, params={"proration_behavior": "sometimes"})
    assert raised.value.param == "proration_behavior"


def test_cancel_at_period_end_then_period_ends(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
    assert sub.cancel_at_period_end is True and sub.status == "active"
    period_end = sub["items"].data[0].current_period_end
    assert sub.cancel_at == period_end and sub.canceled_at is not None
    previous = stand_in.events[-1]["data"]["previous_attributes"]
    assert previous["cancel_at_period_end"] is False
    events = stand_in.advance_period(sub_id)
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    ended = client.v1.subscriptions.retrieve(sub_id)
    assert ended.status == "canceled" and ended.ended_at == period_end


def test_cancel_immediately(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    canceled = client.v1.subscriptions.cancel(sub_id)
    assert canceled.status == "canceled" and canceled.canceled_at and canceled.ended_at
    assert stand_in.events[-1]["type"] == "customer.subscription.deleted"
    assert stand_in.requests[-1].method == "DELETE"
    assert client.v1.subscriptions.list().data == []
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [
        sub_id
    ]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.cancel(sub_id)
    assert raised.value.http_status == 404 and raised.value.code == "resource_missing"


def test_renewal_failure_and_recovery(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    before = client.v1.subscriptions.retrieve(sub_id)
    renewed = stand_in.advance_period(sub_id)
    assert [e["type"] for e in renewed] == [
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    after = client.v1.subscriptions.retrieve(sub_id)
    assert after["items"].data[0].current_period_start == before["items"].data[0].current_period_end
    failed = stand_in.fail_payment(sub_id)
    assert [e["type"] for e in failed] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert failed[0]["data"]["object"]["status"] == "open"
    assert failed[1]["data"]["object"]["status"] == "past_due"
    assert failed[1]["data"]["previous_attributes"]["status"] == "active"
    recovered = stand_in.pay_invoice(sub_id)
    assert recovered[-1]["data"]["object"]["status"] == "active"
    invoices = client.v1.invoices.list(params={"subscription": sub_id})
    assert [i.status for i in invoices.data] == ["paid", "paid", "paid"]


def test_create_subscription_directly_with_trial(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    trial_end = int(time.time()) + 14 * 86400
    sub = stand_in.create_subscription_directly(
        catalog["customer"].id, catalog["monthly"].id, {"customerId": "c-1"}, trial_end
    )
    assert sub["status"] == "trialing" and sub["trial_end"] == trial_end
    assert sub["items"]["data"][0]["current_period_end"] == trial_end
    assert stand_in.events[-3]["type"] == "customer.subscription.created"
    stand_in.advance_period(sub["id"])
    assert client.v1.subscriptions.retrieve(sub["id"]).status == "active"


# -- events, idempotency, errors, faults -------------------------------------------------


def test_events_listed_since_a_time(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    since = stand_in.events[-1]["created"]
    _subscribe(stand_in, client, catalog)
    recent = client.v1.events.list(params={"created": {"gte": since}, "limit": 100})
    assert recent.object == "list" and recent.url == "/v1/events"
    assert recent.data[0].type == "invoice.payment_succeeded"
    subs = client.v1.events.list(params={"type": "customer.subscription.*"})
    assert [e.type for e in subs.data] == ["customer.subscription.created"]
    page = client.v1.events.list(params={"limit": 2})
    assert len(page.data) == 2 and page.has_more is True
    assert len(list(page.auto_paging_iter())) == len(stand_in.events)
    one = client.v1.events.retrieve(page.data[0].id)
    assert one.id == page.data[0].id and one.data.object.object


def test_idempotency_key_replays_the_same_response(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    options = {"idempotency_key": "create-ada-1"}
    first = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    again = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    assert first.id == again.id
    assert [r.replayed for r in stand_in.requests] == [False, True]
    assert len(client.v1.customers.list().data) == 1
    assert [e["type"] for e in stand_in.events] == ["customer.created"]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "b@example.com"}, options=options)


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


def test_signed_webhook_verifies_with_the_sdk(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    event = stand_in.complete_checkout(_checkout(client, catalog).id)[0]
    payload, headers = stand_in.signed_webhook(event, WEBHOOK_SECRET)
    assert headers["Content-Type"] == "application/json"
    assert headers["Stripe-Signature"].startswith("t=")
    verified = stripe.Webhook.construct_event(payload, headers["Stripe-Signature"], WEBHOOK_SECRET)
    assert verified.id == event["id"] and verified.type == "checkout.session.completed"
    assert verified.data.object.subscription == event["data"]["object"]["subscription"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, headers["Stripe-Signature"], "whsec_wrong")
    stale, stale_headers = stand_in.signed_webhook(event, WEBHOOK_SECRET, int(time.time()) - 900)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(stale, stale_headers["Stripe-Signature"], WEBHOOK_SECRET)


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


def test_events_carry_the_request_that_caused_them(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "k1"})
    request = stand_in.events[-1]["request"]
    assert request["idempotency_key"] == "k1"
    assert request["id"] == stand_in.requests[-1].request_id


def test_buyer_enters_a_promotion_code_on_the_page(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    coupon = client.v1.coupons.create(params={"amount_off": 900, "currency": "usd"})
    promo = client.v1.promotion_codes.create(params={"coupon": coupon.id, "code": "WELCOME"})
    session = _checkout(client, catalog, allow_promotion_codes=True)
    events = stand_in.complete_checkout(session.id, promotion_code="welcome")
    completed = events[0]["data"]["object"]
    assert completed["discounts"] == [{"coupon": None, "promotion_code": promo.id}]
    assert completed["amount_total"] == 4000
    invoice = client.v1.invoices.retrieve(
        events[2]["data"]["object"]["id"], params={"expand": ["discounts"]}
    )
    assert invoice.amount_paid == 4000 and invoice.total_discount_amounts[0].amount == 900
    assert invoice.discounts[0].promotion_code == promo.id
    assert client.v1.promotion_codes.retrieve(promo.id).times_redeemed == 1
    once_used_up = client.v1.subscriptions.retrieve(completed["subscription"])
    assert once_used_up.discounts == []


# -- the pinned API version's shapes -------------------------------------------------------


def _reference_fields(cls: type) -> set[str]:
    """The fields stripe-python (the tested SDK) declares for an object at its API version."""
    fields: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        fields.update(getattr(klass, "__annotations__", {}))
    return {name for name in fields if not name.startswith("_") and name[0].islower()}


def test_objects_have_the_reference_shapes_of_the_pinned_api_version(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    sub = client.v1.subscriptions.retrieve(sub_id).to_dict()
    item = sub["items"]["data"][0]
    invoice = client.v1.invoices.retrieve(sub["latest_invoice"]).to_dict()
    line = invoice["lines"]["data"][0]
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": catalog["customer"].id, "return_url": "https://example.com/"}
    ).to_dict()
    dispute = stand_in.dispute_latest_invoice(sub_id)[0]["data"]["object"]
    charge = client.v1.charges.retrieve(dispute["charge"]).to_dict()
    session = _checkout(client, catalog).to_dict()
    customer = client.v1.customers.retrieve(catalog["customer"].id).to_dict()
    shapes = [
        (session, stripe.checkout.Session),
        (customer, stripe.Customer),
        (sub, stripe.Subscription),
        (item, stripe.SubscriptionItem),
        (invoice, stripe.Invoice),
        (line, stripe.InvoiceLineItem),
        (portal, stripe.billing_portal.Session),
        (dispute, stripe.Dispute),
        (charge, stripe.Charge),
    ]
    for obj, reference in shapes:
        unknown = set(obj) - _reference_fields(reference) - {"object"}
        assert not unknown, f"{obj['object']} has fields {reference.__name__} does not: {unknown}"
    # Where this version moved things: the period on items, the subscription under `parent`.
    assert (
        "current_period_end" not in sub
        and item["current_period_end"] > item["current_period_start"]
    )
    assert "subscription" not in invoice and line["subscription"] == sub_id
    assert invoice["parent"]["subscription_details"]["subscription"] == sub_id
    assert sub["pause_collection"] is None


def test_cancel_now_settles_with_a_final_invoice_or_drops_pending_prorations(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    team = client.v1.prices.create(
        params={
            "product": catalog["product"].id,
            "currency": "usd",
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
        }
    )
    settled, dropped = _subscribe(stand_in, client, catalog), _subscribe(stand_in, client, catalog)
    for sub_id in (settled, dropped):
        item = client.v1.subscriptions.retrieve(sub_id)["items"].data[0].id
        client.v1.subscriptions.update(
            sub_id,
            params={
                "items": [{"id": item, "price": team.id}],
                "proration_behavior": "create_prorations",
            },
        )
    mark = len(stand_in.events)
    client.v1.subscriptions.cancel(settled, params={"invoice_now": True, "prorate": True})
    kinds = [e["type"] for e in stand_in.events[mark:]]
    assert kinds == ["customer.subscription.deleted", "invoice.paid", "invoice.payment_succeeded"]
    final = stand_in.events[-1]["data"]["object"]
    assert final["billing_reason"] == "subscription_update"
    mark = len(stand_in.events)
    client.v1.subscriptions.cancel(dropped)  # Stripe's default: pending prorations dropped
    assert [e["type"] for e in stand_in.events[mark:]] == ["customer.subscription.deleted"]


def test_pause_collection_and_a_renewal_awaiting_its_charge(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    sub_id = _subscribe(stand_in, client, catalog)
    paused = client.v1.subscriptions.update(
        sub_id, params={"pause_collection": {"behavior": "void"}}
    )
    assert paused.pause_collection.behavior == "void" and paused.status == "active"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update(sub_id, params={"pause_collection": {"behavior": "x"}})
    assert raised.value.param == "pause_collection[behavior]"
    assert (
        client.v1.subscriptions.update(sub_id, params={"pause_collection": ""}).pause_collection
        is None
    )

    before = client.v1.subscriptions.retrieve(sub_id)["items"].data[0].current_period_end
    events = stand_in.renew_awaiting_payment(sub_id)
    assert [e["type"] for e in events] == ["invoice.created", "customer.subscription.updated"]
    renewed = client.v1.subscriptions.retrieve(sub_id, params={"expand": ["latest_invoice"]})
    assert renewed.status == "active" and renewed.latest_invoice.status == "draft"
    assert renewed["items"].data[0].current_period_start == before
    failed = stand_in.fail_payment(sub_id)
    assert failed[0]["data"]["object"]["status"] == "open"
    gave_up = stand_in.exhaust_retries(sub_id, "unpaid")
    assert gave_up[-1]["data"]["object"]["status"] == "unpaid"
