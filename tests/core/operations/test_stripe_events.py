"""The operator's Stripe events: a failed event's attempts with their errors, "Process again"
after the cause is fixed (the license it issued shown), "Fetch from Stripe" for one that never
arrived, and the list's filters and pages."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.billing.event_attempts import CONSOLE, RETRYING, WORKER
from core.billing.replay import replay_event
from core.db import session_scope
from core.errors import InvalidInputError
from core.licensing.service import current_license
from core.operations.stripe_events import (
    FAILED,
    PROCESSED,
    EventFilter,
    event_detail,
    list_events,
    parse_cursor,
)
from models import StripeEvent
from tests.helpers.failed_events import failed_checkout_event
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import new_customer, start_checkout


def _detail(event_id: str):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        detail = event_detail(session, event_id)
        session.expunge_all()
        return detail


def _ids(**wanted: object) -> list[str]:
    with session_scope() as session:
        return [row.event_id for row in list_events(session, EventFilter(**wanted))]  # type: ignore[arg-type]


def test_a_failed_event_is_processed_again_once_stripe_is_back(
    stand_in, api_client, celery_worker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    customer_id, completed = failed_checkout_event(stand_in, api_client, monkeypatch)
    failed = _detail(completed["id"])
    assert [(a.outcome, a.trigger) for a in failed.attempts] == [
        (RETRYING, WORKER),
        ("failed", WORKER),
    ]
    assert all("503" in (a.error or "") for a in failed.attempts)
    assert failed.license is None
    assert _ids(state=FAILED) == [completed["id"]]

    # Stripe is back: the cause is fixed.
    done = replay_event(completed["id"], trigger=CONSOLE, actor="alice@ops")
    assert done.error is None and not done.fetched
    assert done.outcome is not None and done.outcome.status == "processed"

    processed = _detail(completed["id"])
    assert processed.event.status == "processed" and processed.event.customer_id == customer_id
    last = processed.attempts[-1]
    assert (last.outcome, last.trigger, last.actor) == ("processed", CONSOLE, "alice@ops")
    with session_scope() as session:
        issued = current_license(session, customer_id)
        assert issued is not None
        assert last.license_jti == issued.jti
    assert processed.license is not None and processed.license.plan == "starter"
    assert processed.customer is not None and processed.customer.customer_id == customer_id
    assert _ids(state=FAILED) == []
    assert _ids(state=PROCESSED, customer_id=customer_id) == [completed["id"]]


def test_an_event_that_never_arrived_is_fetched_from_stripe(stand_in) -> None:  # type: ignore[no-untyped-def]
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")

    done = replay_event(completed["id"], trigger=CONSOLE, actor="alice@ops")
    assert done.fetched and done.outcome is not None and done.outcome.status == "processed"
    with session_scope() as session:
        row = session.scalar(select(StripeEvent).where(StripeEvent.event_id == completed["id"]))
        assert row is not None and row.source == "reconciliation"

    missing = replay_event("evt_never_was", trigger=CONSOLE, actor="alice@ops")
    assert missing.outcome is None and not missing.fetched
    assert (missing.error or "").startswith("not fetched from Stripe")
    with pytest.raises(InvalidInputError) as bad:
        replay_event("42; drop table", trigger=CONSOLE)
    assert bad.value.field == "eventId"


def test_the_list_filters_by_type_and_pages_newest_first() -> None:
    from core.billing import inbox

    with session_scope() as session:
        for number in range(5):
            inbox.store_event(
                session,
                {
                    "id": f"evt_{number}",
                    "object": "event",
                    "type": "invoice.paid" if number % 2 else "customer.updated",
                    "created": 1_800_000_000 + number,
                    "data": {"object": {}},
                },
            )
        first = list_events(session, EventFilter(), limit=2)
        assert [row.event_id for row in first] == ["evt_4", "evt_3"]
        after = EventFilter(before=parse_cursor(first[-1].cursor))
        assert [row.event_id for row in list_events(session, after, limit=2)] == ["evt_2", "evt_1"]
        paid = EventFilter(type="invoice.paid")
        assert [row.event_id for row in list_events(session, paid)] == ["evt_3", "evt_1"]
        assert [row.event_id for row in list_events(session, EventFilter(state="waiting"))] == [
            f"evt_{n}" for n in (4, 3, 2, 1, 0)
        ]
    with pytest.raises(InvalidInputError) as bad:
        EventFilter(state="lost")
    assert bad.value.field == "state"
    with pytest.raises(InvalidInputError):
        parse_cursor("x-1")
