"""`POST /webhooks/stripe`: signed events are stored once and handled; anything else is a 400
that stores nothing."""

from __future__ import annotations

import json
import time

from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import deliver, webhook_secret
from tests.stripe_stand_in import signed_webhook


def an_event(event_id: str = "evt_test_webhook_1", event_type: str = "customer.created") -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_123", "object": "customer"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def stored() -> int:
    return int(pg_scalar("SELECT count(*) FROM stripe_events"))  # type: ignore[arg-type]


def test_signed_event_is_stored_once_and_handled(api_client, celery_worker):
    event = an_event()
    first = deliver(api_client, event)
    assert first.status_code == 200, first.text
    assert first.json()["received"] is True
    again = deliver(api_client, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert stored() == 1
    assert pg_scalar("SELECT source FROM stripe_events") == "webhook"
    # A type that needs no action is handled by being marked ignored.
    wait_until(lambda: pg_scalar("SELECT status FROM stripe_events") == "ignored")
    assert pg_scalar("SELECT attempts FROM stripe_events") == 1


def test_forged_signature_gets_400_and_stores_nothing(api_client):
    payload, headers = signed_webhook(an_event(), "whsec_not_ours")
    response = api_client.post("/webhooks/stripe", content=payload, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Stripe-Signature"
    assert stored() == 0


def test_tampered_body_gets_400(api_client):
    payload, headers = signed_webhook(an_event(), webhook_secret())
    tampered = payload.replace(b"cus_123", b"cus_999")
    response = api_client.post("/webhooks/stripe", content=tampered, headers=headers)
    assert response.status_code == 400
    assert stored() == 0


def test_stale_signature_gets_400_and_stores_nothing(api_client):
    response = deliver(api_client, an_event(), timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert "Stripe-Signature" in response.json()["error"]["message"]
    assert stored() == 0
    # Within the 300 s tolerance it is accepted.
    assert deliver(api_client, an_event(), timestamp=int(time.time()) - 250).status_code == 200


def test_missing_signature_gets_400(api_client):
    body = json.dumps(an_event()).encode()
    response = api_client.post(
        "/webhooks/stripe", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Stripe-Signature"
    assert stored() == 0


def _signed_raw(api_client, body: bytes):
    from tests.stripe_stand_in import signature_header

    header = signature_header(body, webhook_secret(), int(time.time()))
    return api_client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": header})


def test_signed_payload_that_is_not_a_stripe_event_gets_400(api_client):
    not_json = _signed_raw(api_client, b"hello, not json")
    assert not_json.status_code == 400 and not_json.json()["error"]["field"] == "body"
    a_list = _signed_raw(api_client, b"[1, 2]")
    assert a_list.status_code == 400
    not_event = _signed_raw(api_client, json.dumps({"id": "cus_1", "object": "customer"}).encode())
    assert not_event.status_code == 400 and not_event.json()["error"]["field"] == "object"
    no_id = an_event()
    del no_id["id"]
    missing_id = _signed_raw(api_client, json.dumps(no_id).encode())
    assert missing_id.status_code == 400 and missing_id.json()["error"]["field"] == "id"
    bad_data = {**an_event(), "data": "nope"}
    assert _signed_raw(api_client, json.dumps(bad_data).encode()).status_code == 400
    assert stored() == 0


def test_non_ascii_signature_gets_400_like_any_bad_signature(api_client):
    payload, headers = signed_webhook(an_event(), webhook_secret())
    # A genuine header whose signature is not ASCII (sent as UTF-8 bytes).
    timestamp = headers["Stripe-Signature"].split(",")[0]
    forged = f"{timestamp},v1=\u00e9\u00e9".encode()
    response = api_client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": forged, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "Stripe-Signature"
    assert stored() == 0
