"""`POST /webhooks/stripe`: verify, store once, enqueue, answer. Never calls Stripe.

A 2xx means the event is stored: a broker outage delays its handling (the sweeper enqueues it
again) but never loses it. A delivery Stripe repeats gets the same answer and no second effect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError

from api.schemas import error_responses
from core import stripe_events
from core.errors import ServiceUnavailableError
from models import session_scope
from tasks.stripe_events import process_event
from workers.enqueue import enqueue

router = APIRouter(tags=["webhooks"])


def _store(event: dict[str, Any]) -> bool:
    try:
        with session_scope() as session:
            return stripe_events.store_event(session, event)
    except OperationalError as exc:
        # Stripe retries a 5xx delivery for days: nothing is lost by refusing it now.
        raise ServiceUnavailableError("the database is unavailable; retry later") from exc


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
    created = await run_in_threadpool(_store, event)
    if created:
        # The row is committed first: if the broker is down now, the sweeper enqueues it later.
        await run_in_threadpool(enqueue, process_event, event["id"])
    return {"received": True, "eventId": event["id"], "duplicate": not created}
