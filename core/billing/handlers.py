"""Handling stored Stripe events: one function per event type, and `process_event` that runs one.

Every handler re-reads the object from Stripe rather than trusting the event's snapshot, so events
that arrive late, twice or out of order all leave the state Stripe holds now. The caller (the
task, or `billing stripe replay`) owns the transaction: the event row is marked in the same
transaction as its effect, so an event is applied once however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing.gateway import StripeGateway, StripeRequestError, get_gateway
from core.billing.inbox import IGNORED, PROCESSED, EventOutcome, PermanentEventError
from core.billing.sync import (
    UnmappedStripeObjectError,
    apply_subscription,
    find_customer_id,
    remember_stripe_customer,
)
from core.errors import NotFoundError
from core.licensing.service import lock_customer
from models import StripeEvent, utcnow

Obj = dict[str, Any]
GatewayFactory = Callable[[], StripeGateway]
Handler = Callable[[Session, Obj, GatewayFactory], EventOutcome]

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")


def _data_object(event: Obj) -> Obj:
    return (event.get("data") or {}).get("object") or {}


def _metadata_customer(obj: Obj) -> str | None:
    value = (obj.get("metadata") or {}).get("customerId")
    return value if isinstance(value, str) and value else None


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _sync_subscription(
    session: Session,
    event: Obj,
    gateway: GatewayFactory,
    *,
    subscription_id: str,
    customer_hint: str | None,
    stripe_customer_id: str | None,
) -> EventOutcome:
    customer_id = find_customer_id(
        session,
        customer_hint=customer_hint,
        stripe_customer_id=stripe_customer_id,
        stripe_subscription_id=subscription_id,
    )
    if customer_id is None:
        raise UnmappedStripeObjectError(
            f"no local customer for Stripe customer {stripe_customer_id} / subscription "
            f"{subscription_id} (metadata customerId {customer_hint!r})"
        )
    # Lock first, then read Stripe: reads are applied in the order they were taken.
    customer = lock_customer(session, customer_id)
    remember_stripe_customer(session, customer, stripe_customer_id)
    sub = gateway().retrieve_subscription(subscription_id)
    outcome = apply_subscription(
        session,
        customer,
        sub,
        reason=f"stripe {event['type']} {event['id']}",
        event_created=int(event["created"]),
    )
    return EventOutcome(
        event["id"],
        PROCESSED if outcome.applied else IGNORED,
        outcome.note,
        outcome.customer_id,
        outcome.license_reissued,
    )


def handle_checkout_completed(
    session: Session, event: Obj, gateway: GatewayFactory
) -> EventOutcome:
    obj = _data_object(event)
    subscription_id = _ref(obj.get("subscription"))
    if obj.get("mode") != "subscription" or not subscription_id:
        return EventOutcome(event["id"], IGNORED, "not a subscription checkout")
    return _sync_subscription(
        session,
        event,
        gateway,
        subscription_id=subscription_id,
        customer_hint=_metadata_customer(obj) or obj.get("client_reference_id"),
        stripe_customer_id=_ref(obj.get("customer")),
    )


def handle_subscription_changed(
    session: Session, event: Obj, gateway: GatewayFactory
) -> EventOutcome:
    obj = _data_object(event)
    return _sync_subscription(
        session,
        event,
        gateway,
        subscription_id=str(obj.get("id")),
        customer_hint=_metadata_customer(obj),
        stripe_customer_id=_ref(obj.get("customer")),
    )


def handle_invoice(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
    obj = _data_object(event)
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    # Newer API versions name the subscription under parent.subscription_details only.
    subscription_id = _ref(obj.get("subscription")) or _ref(details.get("subscription"))
    if not subscription_id:
        return EventOutcome(event["id"], IGNORED, "invoice of no subscription")
    return _sync_subscription(
        session,
        event,
        gateway,
        subscription_id=subscription_id,
        customer_hint=_metadata_customer(details) or _metadata_customer(obj),
        stripe_customer_id=_ref(obj.get("customer")),
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": handle_checkout_completed,
    **{name: handle_subscription_changed for name in SUBSCRIPTION_EVENTS},
    **{name: handle_invoice for name in INVOICE_EVENTS},
}
HANDLED_TYPES = tuple(HANDLERS)


def process_event(
    session: Session,
    event_id: str,
    *,
    force: bool = False,
    gateway: GatewayFactory = get_gateway,
) -> EventOutcome:
    """Handle a stored event once (again with `force`); marks it in the caller's transaction.

    Raises on failure: the caller rolls back and records the attempt (`inbox.record_failure`, in
    a transaction of its own) and decides whether to retry. Permanent problems (an object no
    customer or plan matches, a request Stripe refuses) raise PermanentEventError.
    """
    row = session.scalar(
        select(StripeEvent).where(StripeEvent.event_id == event_id).with_for_update()
    )
    if row is None:
        raise NotFoundError(f"no stored Stripe event {event_id!r}", field="eventId")
    if row.status in (PROCESSED, IGNORED) and not force:
        return EventOutcome(event_id, row.status, "already handled")
    handler = HANDLERS.get(row.type)
    try:
        if handler is None:
            outcome = EventOutcome(event_id, IGNORED, f"{row.type} needs no action")
        else:
            outcome = handler(session, row.payload, gateway)
    except (UnmappedStripeObjectError, StripeRequestError) as exc:
        raise PermanentEventError(str(exc)) from exc
    row.status = outcome.status
    row.processed_at = utcnow()
    row.attempts += 1
    row.last_error = None
    return outcome
