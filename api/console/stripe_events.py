"""Stripe events (`/console/events`): the list (type, customer, state), one event's page (its
payload, every handling attempt, the license it issued), "Process again" and "Fetch from Stripe"
(as `billing stripe replay`)."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.auth import ChangingUser, SignedInUser
from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from core.billing.event_attempts import CONSOLE
from core.billing.handlers import HANDLED_TYPES
from core.billing.replay import replay_event
from core.console.customer_lookup import lookup_customer
from core.operations.stripe_events import (
    DEFAULT_SORT,
    STATES,
    EventFilter,
    event_detail,
    list_events,
    parse_cursor,
)
from core.sorting import MAX_SORT

router = APIRouter(prefix="/console", include_in_schema=False)
EVENTS_PATH = "/console/events"


@router.get("/events")
def events_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    type: Annotated[str, Query(max_length=255)] = "",
    customer: Annotated[str, Query(max_length=64)] = "",
    state: Annotated[str, Query(max_length=20)] = "",
    before: Annotated[str, Query(max_length=40)] = "",
    sort: Annotated[str, Query(max_length=MAX_SORT)] = DEFAULT_SORT,
) -> Response:
    lookup = lookup_customer(session, customer)
    wanted = EventFilter(
        type=type or None,
        customer_id=lookup.customer_id,
        state=state or None,
        before=parse_cursor(before),
        sort=sort or DEFAULT_SORT,
    )
    rows = list_events(session, wanted) if lookup.note is None else []
    order = wanted.order
    filters = {"type": type, "customer": customer, "state": state}

    def link(**changed: str) -> str:
        values = {**filters, "sort": "" if order.param == DEFAULT_SORT else order.param, **changed}
        return f"{EVENTS_PATH}?" + urlencode({k: v for k, v in values.items() if v})

    older = link(before=rows[-1].cursor) if rows else None
    return render(
        request,
        "events.html",
        {
            "rows": rows,
            "filters": filters,
            "types": HANDLED_TYPES,
            "states": list(STATES),
            "older": older,
            "first_page": link(),
            "paged": bool(before),
            "sort": order,
            "sort_link": lambda param: link(sort="" if param == DEFAULT_SORT else param),
            "customer_note": lookup.note,
        },
        user=user,
        block="results",
    )


@router.get("/events/{event_id}")
def event_page(
    request: Request,
    event_id: str,
    session: DbSession,
    user: SignedInUser,
    done: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    detail = event_detail(session, event_id)
    return render(
        request,
        "event.html",
        {
            "detail": detail,
            "payload": json.dumps(detail.payload, indent=2, sort_keys=True),
            "done": done,
        },
        user=user,
    )


@router.post("/events/{event_id}/process")
def process_again(event_id: str, user: ChangingUser) -> Response:
    """Reruns the event's handler now (idempotent), recorded as the operator's attempt."""
    done = replay_event(event_id, trigger=CONSOLE, actor=user.name)
    outcome = "processed" if done.outcome is not None else "failed"
    return RedirectResponse(
        f"{EVENTS_PATH}/{done.event_id}?done={outcome}", status_code=303, headers=PAGE_HEADERS
    )


@router.post("/events/fetch")
def fetch_from_stripe(
    request: Request,
    session: DbSession,
    user: ChangingUser,
    event_id: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    """An event id that never arrived: read from Stripe, stored and handled."""
    done = replay_event(event_id, trigger=CONSOLE, actor=user.name)
    if done.outcome is None and not done.fetched:
        return render(
            request,
            "error.html",
            {"title": "Not fetched", "message": done.error, "back": EVENTS_PATH},
            user=user,
            status_code=422,
        )
    outcome = "fetched" if done.outcome is not None else "failed"
    return RedirectResponse(
        f"{EVENTS_PATH}/{done.event_id}?done={outcome}", status_code=303, headers=PAGE_HEADERS
    )
