"""The stand-in's billing meters, meter events and metered prices, through the real SDK."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn, start_stand_in


@pytest.fixture
def meter(client: stripe.StripeClient) -> stripe.billing.Meter:
    return client.v1.billing.meters.create(
        params={
            "display_name": "Overage",
            "event_name": "overage",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )


@pytest.fixture
def customer(client: stripe.StripeClient) -> str:
    return client.v1.customers.create(params={"email": "metered@example.com"}).id


def _event(
    client: stripe.StripeClient,
    identifier: str,
    value: str = "3",
    customer: str = "cus_1",
    **extra: object,
):
    params = {
        "event_name": "overage",
        "identifier": identifier,
        "payload": {"stripe_customer_id": customer, "value": value},
        "timestamp": int(time.time()) - 3600,
        **extra,
    }
    return client.v1.billing.meter_events.create(params=params)


def test_meter_shape_listing_and_one_active_meter_per_event_name(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    assert meter.id.startswith("mtr_") and meter.object == "billing.meter"
    assert meter.status == "active" and meter.default_aggregation.formula == "sum"
    assert [found.id for found in client.v1.billing.meters.list(params={"status": "active"})] == [
        meter.id
    ]
    assert client.v1.billing.meters.retrieve(meter.id).event_name == "overage"
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.billing.meters.create(
            params={
                "display_name": "Again",
                "event_name": "overage",
                "default_aggregation": {"formula": "sum"},
            }
        )
    assert again.value.param == "event_name"


def test_meter_events_are_summed_and_an_identifier_is_taken_once(
    stand_in: StripeStandIn, client: stripe.StripeClient, meter: stripe.billing.Meter, customer: str
) -> None:
    first = _event(client, "day-1", customer=customer)
    assert first.object == "billing.meter_event" and first.identifier == "day-1"
    _event(client, "day-2", value="4", customer=customer)

    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        _event(client, "day-1", customer=customer)

    assert duplicate.value.http_status == 400
    assert "An event already exists with identifier day-1" in str(duplicate.value.user_message)
    assert stand_in.meters.summed("overage", customer) == 7


def test_an_identifier_is_refused_for_24_hours_then_taken_again() -> None:
    now = [time.time()]
    server = start_stand_in(clock=lambda: now[0])
    try:
        client = server.client()
        client.v1.billing.meters.create(
            params={
                "display_name": "Overage",
                "event_name": "overage",
                "default_aggregation": {"formula": "sum"},
            }
        )
        customer = client.v1.customers.create(params={"email": "window@example.com"}).id
        _event(client, "day-1", customer=customer, timestamp=int(now[0]) - 60)
        now[0] += 23 * 3600
        with pytest.raises(stripe.InvalidRequestError):
            _event(client, "day-1", customer=customer, timestamp=int(now[0]) - 60)
        now[0] += 3600 + 1

        again = _event(client, "day-1", customer=customer, timestamp=int(now[0]) - 60)

        # Stripe forgot the identifier: the resend is a second event, billed twice.
        assert again.identifier == "day-1"
        assert server.meters.summed("overage", customer) == 6
    finally:
        server.stop()


def test_an_event_of_an_unknown_customer_is_accepted_then_reported_and_never_counted(
    stand_in: StripeStandIn, client: stripe.StripeClient, meter: stripe.billing.Meter, customer: str
) -> None:
    _event(client, "known", customer=customer)
    _event(client, "stranger", customer="cus_nobody")

    (thin,) = stand_in.meters.report_meter_errors()

    assert thin["object"] == "v2.core.event" and "data" not in thin
    assert thin["type"] == "v1.billing.meter.error_report_triggered"
    assert thin["related_object"]["id"] == meter.id
    full = client.v2.core.events.retrieve(thin["id"])
    (error_type,) = full.data["reason"]["error_types"]
    assert error_type["code"] == "meter_event_customer_not_found"
    assert [sample["request"]["identifier"] for sample in error_type["sample_errors"]] == [
        "stranger"
    ]
    assert stand_in.meters.summed("overage", "cus_nobody") == 0
    assert stand_in.meters.summed("overage", customer) == 3
    assert stand_in.meters.report_meter_errors() == []  # each reported once


def test_thin_events_are_listed_newest_first_filtered_and_paged_by_url(
    stand_in: StripeStandIn, client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    # GET /v2/core/events: "List events, going back up to 30 days" (docs.stripe.com/api/v2/
    # core/events/list); `created` bounds are RFC 3339 times, pages linked by next_page_url.
    _event(client, "first", customer="cus_nobody")
    (older,) = stand_in.meters.report_meter_errors()
    _event(client, "second", customer="cus_nobody")
    (newer,) = stand_in.meters.report_meter_errors()
    since = older["created"]

    listed = client.v2.core.events.list(
        params={"types": [older["type"]], "created": {"gte": since}, "limit": 1}
    )

    assert [event.id for event in listed.data] == [newer["id"]]
    assert listed.next_page_url is not None
    assert [event.id for event in listed.auto_paging_iter()] == [newer["id"], older["id"]]
    full = client.v2.core.events.list(params={"object_id": meter.id}).data[0]
    assert full.data["reason"]["error_count"] == 1  # as GET /v2/core/events/{id} shows it
    assert client.v2.core.events.list(params={"object_id": "mtr_other"}).data == []
    assert client.v2.core.events.list(params={"types": ["v1.other"]}).data == []
    later = "2999-01-01T00:00:00.000Z"
    assert client.v2.core.events.list(params={"created": {"gt": later}}).data == []


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"timestamp": int(time.time()) - 36 * 86400}, "timestamp"),
        ({"timestamp": int(time.time()) + 3600}, "timestamp"),
        ({"payload": {"value": "1"}}, "payload[stripe_customer_id]"),
        ({"payload": {"stripe_customer_id": "cus_1", "value": "many"}}, "payload[value]"),
    ],
)
def test_meter_events_stripe_refuses(
    client: stripe.StripeClient, meter: stripe.billing.Meter, changes: dict, param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _event(client, "x", **changes)
    assert refused.value.param == param


def test_metered_prices_need_a_meter_and_metered_lines_take_no_quantity(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    product = client.v1.products.create(params={"name": "Starter"})
    recurring = {"interval": "month", "usage_type": "metered"}
    base = {"product": product.id, "currency": "usd", "unit_amount": 10}
    with pytest.raises(stripe.InvalidRequestError) as no_meter:
        client.v1.prices.create(params={**base, "recurring": recurring})
    assert no_meter.value.param == "recurring[meter]"
    metered = client.v1.prices.create(
        params={**base, "recurring": {**recurring, "meter": meter.id}}
    )
    assert metered.recurring.meter == meter.id
    flat = client.v1.prices.create(
        params={**base, "unit_amount": 2900, "recurring": {"interval": "month"}}
    )
    customer = client.v1.customers.create(params={"email": "a@example.com"})

    with pytest.raises(stripe.InvalidRequestError) as quantity:
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": metered.id, "quantity": 1}]}
        )
    assert quantity.value.param == "items[0][quantity]"
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": flat.id, "quantity": 1}, {"price": metered.id}],
        }
    )
    usage_types = [item.price.recurring.usage_type for item in sub["items"].data]
    assert usage_types == ["licensed", "metered"]
    with pytest.raises(stripe.InvalidRequestError) as in_checkout:
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "success_url": "https://example.com/ok",
                "line_items": [{"price": metered.id, "quantity": 2}],
            }
        )
    assert in_checkout.value.param == "line_items[0][quantity]"
