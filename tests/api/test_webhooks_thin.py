"""Thin events (v2) come from an event destination of their own, signed with its own secret
(docs.stripe.com/event-destinations): /webhooks/stripe verifies a thin event with
STRIPE_THIN_WEBHOOK_SECRET and a snapshot event with STRIPE_WEBHOOK_SECRET, neither with the
other's."""

from __future__ import annotations

from typing import Any

from tests.stripe_fixtures import thin_webhook_secret, webhook_secret
from tests.stripe_stand_in.webhooks import signed_webhook

THIN_EVENT: dict[str, Any] = {
    "id": "evt_test_thin_secret",
    "object": "v2.core.event",
    "type": "v1.billing.meter.error_report_triggered",
    "created": "2026-12-07T10:00:00.000Z",
    "related_object": {"id": "mtr_x", "type": "billing.meter", "url": "/v1/billing/meters/mtr_x"},
}


def post(client: Any, event: dict[str, Any], secret: str) -> Any:
    payload, headers = signed_webhook(event, secret)
    return client.post("/webhooks/stripe", content=payload, headers=headers)


def test_a_thin_event_is_verified_with_the_thin_destinations_secret(api_client) -> None:
    refused = post(api_client, THIN_EVENT, webhook_secret())
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "Stripe-Signature"
    assert post(api_client, THIN_EVENT, thin_webhook_secret()).status_code == 200


def test_a_snapshot_event_signed_with_the_thin_secret_is_refused(api_client) -> None:
    event = {
        "id": "evt_test_snapshot_thin",
        "object": "event",
        "type": "invoice.paid",
        "created": 1_700_000_000,
        "data": {"object": {"id": "in_x", "object": "invoice"}},
    }
    assert post(api_client, event, thin_webhook_secret()).status_code == 400
