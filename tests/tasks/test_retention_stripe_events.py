"""Stripe event payloads past STRIPE_EVENT_RETENTION_DAYS: dropped from processed events only,
the row (id, type, customer, outcome) kept, so a re-delivery is still a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.billing import inbox
from core.billing.handlers import process_event
from core.db import session_scope
from core.errors import ConflictError
from core.settings import get_settings
from models import Customer, StripeEvent
from tasks.maintenance import prune_retention
from tests.stripe_fixtures import deliver, new_customer

pytestmark = pytest.mark.usefixtures("celery_worker")

NOW = datetime.now(UTC)
PAST_RETENTION = NOW - timedelta(days=get_settings().stripe_event_retention_days + 1)
WITHIN_RETENTION = NOW - timedelta(days=get_settings().stripe_event_retention_days - 1)


def _event(event_id: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    # Shaped as Stripe sends events (https://docs.stripe.com/api/events/object).
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(PAST_RETENTION.timestamp()) - 60,
        "livemode": False,
        "data": {"object": obj},
    }


INVOICE = {"id": "in_old", "object": "invoice", "customer": "cus_paid", "amount_paid": 2900}
CUSTOMER = {"id": "cus_self", "object": "customer", "email": "a@example.com"}
# event id -> (event, status, processed_at)
HISTORY = {
    "evt_old_paid": (_event("evt_old_paid", "invoice.paid", INVOICE), "processed", PAST_RETENTION),
    "evt_old_customer": (
        _event("evt_old_customer", "customer.updated", CUSTOMER),
        "ignored",
        PAST_RETENTION,
    ),
    "evt_recent": (_event("evt_recent", "invoice.paid", INVOICE), "processed", WITHIN_RETENTION),
    "evt_old_failed": (_event("evt_old_failed", "invoice.paid", INVOICE), "failed", PAST_RETENTION),
    "evt_old_pending": (_event("evt_old_pending", "invoice.paid", INVOICE), "pending", None),
}


@pytest.fixture
def events() -> str:
    """The customer `cus_paid` is (its events never handled: the pruner learns whose they are)."""
    customer_id = new_customer()
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id="cus_paid")
        )
        for event, status, processed_at in HISTORY.values():
            assert inbox.store_event(session, event)
            session.execute(
                update(StripeEvent)
                .where(StripeEvent.event_id == event["id"])
                .values(status=status, processed_at=processed_at, received_at=PAST_RETENTION)
            )
    return customer_id


def _rows() -> dict[str, tuple]:
    with session_scope() as session:
        return {
            row.event_id: (row.type, row.status, row.payload, row.customer_id)
            for row in session.scalars(select(StripeEvent))
        }


def test_processed_payloads_past_retention_go_and_nothing_else(
    api_client: Any, events: str
) -> None:
    before = _rows()
    assert prune_retention.delay(True).get(timeout=60)["stripe_events"] == 2
    assert _rows() == before  # the dry run changed nothing

    assert prune_retention.delay().get(timeout=60)["stripe_events"] == 2

    after = _rows()
    assert after["evt_old_paid"] == ("invoice.paid", "processed", None, events)
    assert after["evt_old_customer"] == ("customer.updated", "ignored", None, None)
    for kept in ("evt_recent", "evt_old_failed", "evt_old_pending"):
        assert after[kept] == before[kept]
    # Idempotent.
    assert prune_retention.delay().get(timeout=60)["stripe_events"] == 0
    assert _rows() == after

    # Stripe delivers the old event again: still a duplicate, nothing stored or handled again.
    answer = deliver(api_client, HISTORY["evt_old_paid"][0])
    assert answer.status_code == 200
    assert answer.json()["duplicate"] is True
    assert _rows() == after
    # Handling it again by force says why it cannot be, instead of failing on a missing payload.
    with session_scope() as session, pytest.raises(ConflictError, match="payload pruned"):
        process_event(session, "evt_old_paid", force=True)
