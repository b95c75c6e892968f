"""`POST /webhooks/stripe`: verify, store once, enqueue, answer. Never calls Stripe.

A 2xx means the event is stored: a broker outage delays its handling (the sweeper enqueues it
again) but never loses it. A delivery Stripe repeats gets the same answer and no second effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from api.ingress_lane import LaneAnswer, LaneRequest, answer_in_framework
from api.schemas import error_responses
from core.billing import inbox
from core.billing.inbox import EventIngress
from workers import task_names
from workers.enqueue import enqueue


def build_event_ingress() -> EventIngress:
    """Made once per API process at start-up (`_lifespan`), not at import: it reads the
    settings. The events' task is sent by its name (the API never imports tasks/)."""

    def publish(event_ids: list[str]) -> None:
        # Quietly when the broker is down: the rows are committed and the sweeper enqueues
        # whatever was not published.
        enqueue(task_names.PROCESS_EVENTS, event_ids)

    return inbox.start_event_ingress(publish)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up of each API process (merged into the app's lifespan by include_router).
    ingress = app.state.event_ingress = build_event_ingress()
    yield
    # Shutdown: the groups in flight are committed and their ids published before we go.
    await ingress.aclose()


router = APIRouter(tags=["webhooks"], lifespan=_lifespan)


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook (signed with STRIPE_WEBHOOK_SECRET)",
    responses={
        **error_responses(413, 503),
        400: {**error_responses(400)[400], "description": "Bad or stale signature, not an event"},
    },
)
async def stripe_webhook(request: Request) -> JSONResponse:
    # The application answers this route in its ingress lane (api/app.py) without coming here;
    # the declaration documents it.
    return await answer_in_framework(receive_event, request)


async def receive_event(request: LaneRequest) -> LaneAnswer:
    """A Stripe delivery in: signature verified, stored once in a group transaction."""
    event = inbox.verify_event(request.body, request.header(b"stripe-signature"))
    ingress: EventIngress = request.state.event_ingress
    created = await ingress.batcher.submit(event)
    return 200, {"received": True, "eventId": event["id"], "duplicate": not created}
