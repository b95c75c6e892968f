"""Beat jobs that keep the Stripe inbox complete: the sweeper and the reconciliation."""

from __future__ import annotations

import logging
from typing import Any

from core import stripe_events
from core.stripe_gateway import get_gateway, stripe_configured
from models import session_scope
from tasks.stripe_events import process_event
from workers.celery_app import celery_app
from workers.enqueue import enqueue

log = logging.getLogger(__name__)


@celery_app.task(name="tasks.stripe_sync.sweep_events")
def sweep_events() -> dict[str, Any]:
    """Enqueue stored events whose task never ran (the broker was down when they arrived)."""
    with session_scope() as session:
        event_ids = stripe_events.events_to_sweep(session)
    enqueued = [event_id for event_id in event_ids if enqueue(process_event, event_id)]
    return {"found": len(event_ids), "enqueued": len(enqueued)}


@celery_app.task(
    name="tasks.stripe_sync.reconcile_events",
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=300,
    max_retries=3,
)
def reconcile_events(days: int | None = None) -> dict[str, Any]:
    """List Stripe's recent events and handle any the webhook never delivered."""
    if not stripe_configured():
        # Development without Stripe keys: nothing to reconcile, and no error every 15 minutes.
        return {"skipped": "STRIPE_SECRET_KEY is not set", "stored": 0}
    new_ids = stripe_events.reconcile(get_gateway(), days=days)
    for event_id in new_ids:
        enqueue(process_event, event_id)
    if new_ids:
        log.warning("reconciliation found %d Stripe events the webhook missed", len(new_ids))
    return {"stored": len(new_ids), "eventIds": new_ids}
