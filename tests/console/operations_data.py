"""Rows the operations pages' tests (client and browser) start from."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.billing import inbox
from core.customers.service import create_customer
from core.db import session_scope
from models import StripeEvent, Subscription, utcnow

NOW = utcnow()


def past_due_customer() -> str:
    """Late GmbH: starter, past_due since its renewal failed 2 days ago ($29.00 due)."""
    with session_scope() as session:
        found = create_customer(session, email="late@acme.io", company_name="Late GmbH")
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == found.customer_id)
            .values(
                plan="starter",
                status="past_due",
                stripe_subscription_id="sub_late",
                paid_through_at=NOW - timedelta(days=2),
                current_period_ends_at=NOW + timedelta(days=28),
            )
        )
        inbox.store_event(
            session,
            {
                "id": "evt_failed_1",
                "object": "event",
                "type": "invoice.payment_failed",
                "created": int((NOW - timedelta(days=2)).timestamp()),
                "data": {"object": {"id": "in_1", "object": "invoice", "amount_due": 2900}},
            },
        )
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.event_id == "evt_failed_1")
            .values(status=inbox.PROCESSED, customer_id=found.customer_id)
        )
        return found.customer_id
