"""`POST /webhooks/stripe`: verify, store once, enqueue, answer. Never calls Stripe.

A 2xx means the event is stored: a broker outage delays its handling (the sweeper enqueues it
again) but never loses it. A delivery Stripe repeats gets the same answer and no second effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from fastapi import APIRouter, Request

from api.schemas import error_responses
from core.batching import MicroBatcher
from core.billing import inbox as stripe_events
from core.db import session_scope
from tasks.billing import dispatch_events, process_event
from workers.enqueue import enqueue

router = APIRouter(tags=["webhooks"])


def _store_event_batch(events: list[dict[str, Any]]) -> list[bool]:
    with session_scope() as session:
        return stripe_events.store_events(session, events)


def _enqueue_event_batch(events: list[dict[str, Any]], created: Sequence[bool | Exception]) -> None:
    new_ids = [event["id"] for event, new in zip(events, created, strict=True) if new is True]
    # After the answers, and quietly when the broker is down: the rows are committed and the
    # sweeper enqueues whatever was not published.
    if len(new_ids) == 1:
        enqueue(process_event, new_ids[0])
    elif new_ids:
        enqueue(dispatch_events, new_ids)


@cache
def event_batcher() -> MicroBatcher[dict[str, Any], bool]:
    """Concurrent deliveries to this process share one transaction and one publish
    (core/batching); made on first use, not at import, because it reads the settings."""
    return MicroBatcher.from_settings(_store_event_batch, _enqueue_event_batch)


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook (signed with STRIPE_WEBHOOK_SECRET)",
    responses={
        **error_responses(413, 503),
        400: {**error_responses(400)[400], "description": "Bad or stale signature, not an event"},
    },
)
async def stripe_webhook(request: Request) -> dict[str, Any]:
    payload = await request.body()
    event = stripe_events.verify_event(payload, request.headers.get("stripe-signature"))
    created = await event_batcher().submit(event)
    return {"received": True, "eventId": event["id"], "duplicate": not created}
