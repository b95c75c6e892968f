"""The stand-in's events and idempotency through the real SDK: events listed and naming their
request, signed webhooks, idempotency keys replayed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.conftest import open_checkout, subscribe

WEBHOOK_SECRET = "whsec_test_standin"


def test_events_listed_since_a_time(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    since = stand_in.events[-1]["created"]
    subscribe(stand_in, client, catalog)
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


def test_signed_webhook_verifies_with_the_sdk(
    stand_in: StripeStandIn, client: stripe.StripeClient, catalog: Any
) -> None:
    event = stand_in.complete_checkout(open_checkout(client, catalog).id)[0]
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


def test_events_carry_the_request_that_caused_them(
    stand_in: StripeStandIn, client: stripe.StripeClient
) -> None:
    client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "k1"})
    request = stand_in.events[-1]["request"]
    assert request["idempotency_key"] == "k1"
    assert request["id"] == stand_in.requests[-1].request_id
