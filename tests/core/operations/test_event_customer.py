"""One rule for a Stripe event's customer (core/billing/event_customers.py): the customer page's
Timeline and the events list (with its Customer filter) show the same events of a customer: a
failed one, a dispute, and one that arrives after customer.deleted cleared the Stripe id."""

from __future__ import annotations

import copy
from typing import Any

from core.console.timeline import customer_timeline
from core.db import session_scope
from core.operations.stripe_events import EventFilter, event_detail, list_events
from tests.conftest import pg_scalar
from tests.helpers.failed_events import failed_checkout_event
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, paying_customer


def _timeline(customer_id: str) -> dict[str, str | None]:
    """The timeline's Stripe events: id -> outcome."""
    with session_scope() as session:
        items = customer_timeline(session, customer_id, [], None)
        return {item.ref: item.outcome for item in items if item.kind == "stripe"}  # type: ignore[misc]


def _listed(customer: str) -> list[str]:
    with session_scope() as session:
        return [row.event_id for row in list_events(session, EventFilter(customer_id=customer))]


def _list_customer(event_id: str) -> str | None:
    with session_scope() as session:
        rows = list_events(session, EventFilter(), limit=500)
        return next(row.customer_id for row in rows if row.event_id == event_id)


def _stripe_customer(customer_id: str) -> str:
    return str(
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
    )


def test_a_failed_event_is_on_the_timeline_and_listed_under_its_customer(
    stand_in, api_client, celery_worker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    customer_id, completed = failed_checkout_event(
        stand_in, api_client, monkeypatch, email="Ops@Failing.example", company="Failing Ltd"
    )
    outcome = _timeline(customer_id)[completed["id"]]
    assert outcome is not None and outcome.startswith("failed: ") and "503" in outcome
    assert _list_customer(completed["id"]) == customer_id
    # The Customer filter: our id, a prefix of the email or company (any case).
    for named in (customer_id, "ops@fail", "failing l"):
        assert _listed(named) == [completed["id"]], named
    assert _listed("someone-else") == []
    with session_scope() as session:
        detail = event_detail(session, completed["id"])
        assert detail.customer is not None and detail.customer.customer_id == customer_id


def test_a_dispute_is_on_the_timeline_and_listed_under_its_customer(stand_in) -> None:  # type: ignore[no-untyped-def]
    customer_id, sub_id = paying_customer(stand_in)
    opened = stand_in.dispute_latest_invoice(sub_id)
    handle_inline(opened)
    dispute_event = opened[0]["id"]
    assert _timeline(customer_id)[dispute_event] == "processed"
    assert _list_customer(dispute_event) == customer_id
    assert dispute_event in _listed(customer_id)
    assert dispute_event in _listed(_stripe_customer(customer_id))
    # Every event the timeline shows is listed under the customer, and the other way round.
    assert set(_timeline(customer_id)) == set(_listed(customer_id))


def test_events_after_customer_deleted_stay_with_their_customer(stand_in) -> None:  # type: ignore[no-untyped-def]
    customer_id, _ = paying_customer(stand_in)
    stripe_customer = _stripe_customer(customer_id)
    mark = len(stand_in.events)
    stand_in.client().v1.customers.delete(stripe_customer)
    deleted_events = stand_in.events[mark:]
    handle_inline(deleted_events)
    assert (
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
        is None
    )
    # Stripe still sends an event naming the deleted customer (no handler: ignored).
    deleted = next(e for e in deleted_events if e["type"] == "customer.deleted")
    late: dict[str, Any] = copy.deepcopy(deleted)
    late["id"], late["type"] = f"{deleted['id']}late", "customer.updated"
    handle_inline([late])

    timeline = _timeline(customer_id)
    for event in [*deleted_events, late]:
        assert event["id"] in timeline, event["type"]
        assert _list_customer(event["id"]) == customer_id, event["type"]
    # Filtering by the Stripe id it had still finds them.
    assert {e["id"] for e in [*deleted_events, late]} <= set(_listed(stripe_customer))
    assert set(timeline) == set(_listed(customer_id))
