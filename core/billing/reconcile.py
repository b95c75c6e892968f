"""Reconciliation: what the webhook missed, found by asking Stripe (a beat job and a replay).

Stripe is listed first and the database written after, so no Stripe call waits inside a
transaction; storing goes through the inbox like any delivery, so a worker handles a missed
event exactly as it would have handled the webhook.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing.gateway import StripeGateway
from core.billing.handlers import HANDLED_TYPES
from core.billing.inbox import SOURCE_RECONCILIATION, store_event
from core.settings import get_settings
from models import StripeEvent, utcnow


def store_missed_events(
    session: Session, gateway: StripeGateway, *, days: int | None = None
) -> list[str]:
    """Store the handled events of the last `days` that the webhook never delivered; their ids."""
    days = days if days is not None else get_settings().stripe_reconcile_days
    since = int((utcnow() - timedelta(days=days)).timestamp())
    found = list(gateway.list_events(created_gte=since, types=list(HANDLED_TYPES)))
    known = set(
        session.scalars(
            select(StripeEvent.event_id).where(
                StripeEvent.event_id.in_([event["id"] for event in found])
            )
        )
    )
    new_ids: list[str] = []
    # Oldest first, so workers see them roughly in Stripe's order.
    for event in sorted(found, key=lambda e: e.get("created") or 0):
        if event["id"] in known:
            continue
        if store_event(session, event, source=SOURCE_RECONCILIATION):
            new_ids.append(event["id"])
    return new_ids


def fetch_and_store(session: Session, gateway: StripeGateway, event_id: str) -> bool:
    """Store one event read from Stripe (for a replay of an event the webhook never brought)."""
    event = gateway.retrieve_event(event_id)
    return store_event(session, event, source=SOURCE_RECONCILIATION)
