"""Handling stored Stripe events: one function per event type, and `process_event` that runs one.

Every subscription handler re-reads the subscription from Stripe rather than trusting the event's
snapshot, so events that arrive late, twice or out of order all leave the state Stripe holds now.
Stripe is read before the customer is locked (no Stripe call under the lock); the read's start
time orders the applies (`core.billing.sync`). The caller (the task, or `billing stripe replay`)
owns the transaction: the event row is marked in the same transaction as its effect, so an event
is applied once however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing import event_attempts, event_customers, issues, promotions
from core.billing.gateway import StripeGateway, StripeRequestError, get_gateway
from core.billing.inbox import IGNORED, PROCESSED, EventOutcome, PermanentEventError
from core.billing.metering import events
from core.billing.sync import (
    UnmappedStripeObjectError,
    apply_subscription,
    find_customer_id,
    remember_stripe_customer,
)
from core.customers.lock import get_for_update
from core.errors import ConflictError, NotFoundError
from models import StripeEvent, utcnow

Obj = dict[str, Any]
GatewayFactory = Callable[[], StripeGateway]
Handler = Callable[[Session, Obj, GatewayFactory], EventOutcome]

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    # Three days before a trial ends: the subscription is re-read (its state is unchanged unless
    # something else moved), so the row and license are known current when the trial converts.
    "customer.subscription.trial_will_end",
    # An upgrade left unpaid for 23 hours is dropped with what it carried (`promotions`).
    "customer.subscription.pending_update_expired",
)
INVOICE_EVENTS = (
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    # The payer must authenticate (3-D Secure): nothing is paid yet, so nothing more is granted;
    # re-reading keeps the status (incomplete / past_due) Stripe gives it.
    "invoice.payment_action_required",
)
DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


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
    subscription_id: str,
    customer_hint: str | None,
) -> EventOutcome:
    """Apply Stripe's subscription `subscription_id` to the customer it belongs to (by
    `customer_hint`, the event object's Stripe customer or the subscription id)."""
    stripe_customer_id = _ref(_data_object(event).get("customer"))
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
    # Read Stripe, then lock and apply: no Stripe call waits under the customer lock.
    read_at = utcnow()
    sub = gateway().retrieve_subscription(subscription_id)
    customer = get_for_update(session, customer_id)
    remember_stripe_customer(session, customer, stripe_customer_id)
    outcome = apply_subscription(
        session,
        customer,
        sub,
        reason=f"stripe {event['type']} {event['id']}",
        event_created=int(event["created"]),
        read_at=read_at,
    )
    return EventOutcome(
        event["id"],
        PROCESSED if outcome.applied else IGNORED,
        outcome.note,
        outcome.customer_id,
        outcome.license_reissued,
        # A paid upgrade's promotion code becomes its discount after this commits: no Stripe
        # write under the event's row lock (`core.billing.promotions`).
        promotion_waiting=subscription_id if promotions.waiting(sub) else None,
    )


def handle_checkout_completed(
    session: Session, event: Obj, gateway: GatewayFactory
) -> EventOutcome:
    obj = _data_object(event)
    subscription_id = _ref(obj.get("subscription"))
    if obj.get("mode") != "subscription" or not subscription_id:
        return EventOutcome(event["id"], IGNORED, "not a subscription checkout")
    hint = _metadata_customer(obj) or obj.get("client_reference_id")
    return _sync_subscription(session, event, gateway, subscription_id, hint)


def handle_subscription_changed(
    session: Session, event: Obj, gateway: GatewayFactory
) -> EventOutcome:
    obj = _data_object(event)
    hint = _metadata_customer(obj)
    return _sync_subscription(session, event, gateway, str(obj.get("id")), hint)


def handle_invoice(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
    obj = _data_object(event)
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    # Newer API versions name the subscription under parent.subscription_details only.
    subscription_id = _ref(obj.get("subscription")) or _ref(details.get("subscription"))
    if not subscription_id:
        return EventOutcome(event["id"], IGNORED, "invoice of no subscription")
    hint = _metadata_customer(details) or _metadata_customer(obj)
    return _sync_subscription(session, event, gateway, subscription_id, hint)


def handle_customer_deleted(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
    """The Stripe customer was deleted: forget its id, so the next checkout makes a new one
    (Stripe refuses a deleted customer). Its subscriptions end in Stripe and their own events
    update the row."""
    stripe_customer_id = _ref(_data_object(event).get("id"))
    customer_id = find_customer_id(session, stripe_customer_id=stripe_customer_id)
    if customer_id is None:
        return EventOutcome(event["id"], IGNORED, f"{stripe_customer_id} is no customer of ours")
    customer = get_for_update(session, customer_id)
    if customer.stripe_customer_id == stripe_customer_id:
        customer.stripe_customer_id = None
        session.flush()
    return EventOutcome(
        event["id"], PROCESSED, f"Stripe customer {stripe_customer_id} cleared", customer_id
    )


def handle_dispute(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
    """A disputed charge is recorded and shown (`core.billing.issues`), never acted on: the
    dispute may be won, and cutting a customer off is an operator's decision."""
    dispute = _data_object(event)
    charge_id = _ref(dispute.get("charge"))
    charge = dispute.get("charge") if isinstance(dispute.get("charge"), dict) else None
    if charge is None and charge_id:
        charge = gateway().retrieve_charge(charge_id)
    customer_id = find_customer_id(session, stripe_customer_id=_ref((charge or {}).get("customer")))
    if customer_id is not None:
        get_for_update(session, customer_id)
    issue = issues.record_dispute(session, customer_id, dispute)
    note = f"dispute {issue.stripe_object_id} {issue.stripe_status}"
    return EventOutcome(event["id"], PROCESSED, note, customer_id)


def handle_meter_error_report(
    session: Session, event: Obj, gateway: GatewayFactory
) -> EventOutcome:
    """Stripe's asynchronous validation refused meter events it had accepted: those named in the
    report's samples are marked failed (`core.billing.metering.events.mark_reported`), so they
    are not counted as billed and an operator sees them."""
    full = gateway().retrieve_thin_event(str(event["id"]))
    failed = events.mark_reported(session, events.reported_errors(full))
    # Every report is recorded, also one whose samples name none of ours: its count is the news.
    summary, count = events.report_summary(full)
    issues.record_meter_error_report(session, str(event["id"]), summary, count)
    note = f"{count} meter event(s) Stripe reported invalid, {len(failed)} named marked failed"
    return EventOutcome(event["id"], PROCESSED, note)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": handle_checkout_completed,
    **{name: handle_subscription_changed for name in SUBSCRIPTION_EVENTS},
    **{name: handle_invoice for name in INVOICE_EVENTS},
    "customer.deleted": handle_customer_deleted,
    **{name: handle_dispute for name in DISPUTE_EVENTS},
    events.ERROR_REPORT_EVENT: handle_meter_error_report,
}
HANDLED_TYPES = tuple(HANDLERS)


def process_event(
    session: Session,
    event_id: str,
    *,
    force: bool = False,
    gateway: GatewayFactory = get_gateway,
    trigger: str = event_attempts.WORKER,
    actor: str | None = None,
) -> EventOutcome:
    """Handle a stored event once (again with `force`); marks it in the caller's transaction,
    with the attempt (`trigger`: which door ran it, `actor`: who) and the customer it applied to.

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
    if row.payload is None:
        raise ConflictError(
            f"Stripe event {event_id!r} was processed more than STRIPE_EVENT_RETENTION_DAYS ago "
            "and its payload pruned: it cannot be handled again",
            field="eventId",
        )
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
    event_customers.assign_customer(session, row, outcome.customer_id)
    event_attempts.record_attempt(
        session,
        event_id,
        outcome.status,
        trigger=trigger,
        actor=actor,
        customer_id=outcome.customer_id,
        license_reissued=outcome.license_reissued,
        # Why an event was ignored, so the operator who asked for it sees the reason.
        error=outcome.note if outcome.status == IGNORED else None,
    )
    return outcome
