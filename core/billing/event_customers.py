"""Whose event is it: the one rule for a Stripe event's customer of ours.

`stripe_events.customer_id` says it, set when the event is handled (by the handler's outcome,
which knows a dispute's charge) or, before that and when handling fails, from the payload:
its `metadata.customerId` / `client_reference_id`, its Stripe customer (the object itself for
customer.* events), its subscription, and last an earlier event of the same Stripe customer
(so events after customer.deleted cleared our copy of the Stripe id still find their owner).
The column outlives the payload (retention prunes the payload only); the console's timeline,
event list and event page all read it through `ix_stripe_events_customer_created`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.billing.sync import find_customer_id
from models import StripeEvent


def payload_stripe_customer() -> ColumnElement[str]:
    """The Stripe customer an event's object names: the expression `ix_stripe_events_customer`
    indexes (the planner matches it only when built the same way)."""
    return StripeEvent.payload["data"]["object"]["customer"].as_string()


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def stripe_customer_of(payload: dict[str, Any] | None) -> str | None:
    """The Stripe customer an event is about: its object's `customer` (an id, or expanded), or
    the object itself when it is a customer."""
    obj = ((payload or {}).get("data") or {}).get("object") or {}
    if obj.get("object") == "customer":
        return _ref(obj.get("id"))
    return _ref(obj.get("customer"))


def _hint(obj: dict[str, Any]) -> str | None:
    for metadata in (obj.get("metadata"), (obj.get("subscription_details") or {}).get("metadata")):
        value = (metadata or {}).get("customerId")
        if isinstance(value, str) and value:
            return value
    return _ref(obj.get("client_reference_id"))


def customer_of_event(session: Session, payload: dict[str, Any] | None) -> str | None:
    """Our customer for a stored event's payload, or None when it names none of ours."""
    obj = ((payload or {}).get("data") or {}).get("object") or {}
    stripe_customer_id = stripe_customer_of(payload)
    subscription_id = (
        _ref(obj.get("id"))
        if obj.get("object") == "subscription"
        else _ref(obj.get("subscription"))
    )
    found = find_customer_id(
        session,
        customer_hint=_hint(obj),
        stripe_customer_id=stripe_customer_id,
        stripe_subscription_id=subscription_id,
    )
    if found is None and stripe_customer_id:
        found = session.scalar(
            select(StripeEvent.customer_id)
            .where(
                payload_stripe_customer() == stripe_customer_id,
                StripeEvent.customer_id.is_not(None),
            )
            .limit(1)
        )
    return found


def assign_customer(session: Session, row: StripeEvent, customer_id: str | None = None) -> None:
    """Give the row its customer: the handler's (`customer_id`) wins; else keep the one it has;
    else the payload's."""
    if customer_id:
        row.customer_id = customer_id
    elif row.customer_id is None and row.payload is not None:
        row.customer_id = customer_of_event(session, row.payload)
