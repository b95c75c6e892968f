"""Meter events (`/console/meter-events`): per customer and day, sent, failed, unconfirmed or
waiting; "Send again" (failed ones) and "Settle" (unconfirmed ones: in Stripe or not), the same
service functions as `billing stripe meter-retry` and `meter-settle`. The send that follows runs
on a worker once the request's transaction has committed."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.auth import ChangingUser, SignedInUser
from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from core.billing.metering.events import retry_failed, settle_unconfirmed
from core.operations.meter_events import DEFAULT_SORT, MAX_DAYS, SORTS, STATES, customer_days
from core.sorting import MAX_SORT, parse_sort
from workers import task_names
from workers.enqueue import enqueue

router = APIRouter(prefix="/console", include_in_schema=False)
METER_PATH = "/console/meter-events"
_DONE = {
    "sent": "Sent again: the next send delivers {count} meter event(s).",
    "settled": "Settled {count} meter event(s).",
    "none": "Nothing changed: no meter event in that state matched.",
}


def _send_now() -> None:
    enqueue(task_names.SEND_METER_EVENTS)


@router.get("/meter-events")
def meter_events_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 7,
    state: Annotated[str, Query(max_length=20)] = "",
    customer: Annotated[str, Query(max_length=64)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
    count: Annotated[int, Query(ge=0, le=100_000)] = 0,
    sort: Annotated[str, Query(max_length=MAX_SORT)] = DEFAULT_SORT,
) -> Response:
    # "all" as the other pages' filters take it: no state filter.
    state = "" if state == "all" else state
    order = parse_sort(sort, SORTS, DEFAULT_SORT)
    rows = customer_days(
        session, days=days, state=state or None, customer_id=customer or None, sort=order.param
    )
    notice = _DONE.get(done, "").format(count=count)

    def sort_link(param: str) -> str:
        values = {"days": days, "state": state, "customer": customer}
        values["sort"] = "" if param == DEFAULT_SORT else param
        return f"{METER_PATH}?" + urlencode({k: v for k, v in values.items() if v})

    return render(
        request,
        "meter_events.html",
        {
            "rows": rows,
            "days": days,
            "state": state,
            "customer": customer,
            "states": STATES,
            "notice": notice,
            "sort": order,
            "sort_link": sort_link,
        },
        user=user,
        block="results",
    )


def _back(done: str, count: int) -> Response:
    outcome = done if count else "none"
    return RedirectResponse(
        f"{METER_PATH}?done={outcome}&count={count}", status_code=303, headers=PAGE_HEADERS
    )


@router.post("/meter-events/send-again")
def send_again_action(
    session: DbSession,
    user: ChangingUser,
    background: BackgroundTasks,
    event_id: Annotated[list[int], Form(max_length=500)],
) -> Response:
    reset = retry_failed(session, event_id)
    if reset:
        background.add_task(_send_now)
    return _back("sent", len(reset))


@router.post("/meter-events/settle")
def settle_action(
    session: DbSession,
    user: ChangingUser,
    background: BackgroundTasks,
    event_id: Annotated[list[int], Form(max_length=500)],
    in_stripe: Annotated[bool, Form()],
) -> Response:
    settled = settle_unconfirmed(session, event_id, in_stripe=in_stripe)
    if settled and not in_stripe:
        background.add_task(_send_now)
    return _back("settled", len(settled))
