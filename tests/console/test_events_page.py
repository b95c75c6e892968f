"""The Stripe events list's State filter offers every state an event can have, and the event
page heads with the event's type and id."""

from __future__ import annotations

from sqlalchemy import update

from core.billing import inbox
from core.db import session_scope
from core.operations.stripe_events import STATES
from models import StripeEvent


def _event(event_id: str, status: str) -> None:
    with session_scope() as session:
        inbox.store_event(
            session,
            {
                "id": event_id,
                "object": "event",
                "type": "customer.updated",
                "created": 1_700_000_000,
            },
        )
        session.execute(
            update(StripeEvent).where(StripeEvent.event_id == event_id).values(status=status)
        )


def test_the_state_filter_offers_every_state_and_ignored_alone(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    for status in inbox.STATUSES:
        _event(f"evt_{status}", status)
    page = client.get("/console/events").text
    options = page[page.index('<select id="state"') :].split("</select>")[0]
    for state in ("processed", "ignored", "failed", "waiting"):
        assert f'<option value="{state}"' in options
    # Every stored status is under exactly one state.
    assert sorted(s for covered in STATES.values() for s in covered) == sorted(inbox.STATUSES)

    ignored = client.get("/console/events", params={"state": "ignored"}).text
    assert "/console/events/evt_ignored" in ignored
    assert "/console/events/evt_processed" not in ignored
    processed = client.get("/console/events", params={"state": "processed"}).text
    assert "/console/events/evt_processed" in processed
    assert "/console/events/evt_ignored" not in processed


def test_the_event_page_heads_with_its_type_and_id_and_a_small_dashboard_link(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    _event("evt_head", inbox.PROCESSED)
    page = client.get("/console/events/evt_head").text
    heading = page[page.index("<h1") :].split("</h1>")[0]
    assert "customer.updated" in heading and "<code>evt_head</code>" in heading
    assert "Stripe Dashboard" not in heading
    assert '<a class="small" href="https://dashboard.stripe.com/' in page
    assert "a.small { font-size: 13px; }" in client.get("/console/static/console.css").text
