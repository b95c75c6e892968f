"""The Stripe event inbox: verify, store once, process, and the operator's view of it.

The webhook path (`verify_event`, `store_event`) never calls Stripe: it checks the signature,
stores the event under its unique Stripe id and returns. A worker then calls `process_event`,
which locks the stored row, handles it and marks it in the same transaction as its effect, so an
event is applied once however often it is delivered, enqueued or replayed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import stripe
from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.billing.gateway import StripeGateway, StripeRequestError, get_gateway
from core.billing.sync import (
    UnmappedStripeObjectError,
    apply_subscription,
    find_customer_id,
    remember_stripe_customer,
)
from core.db import session_scope
from core.errors import ConfigurationError, DomainError, NotFoundError
from core.licensing.service import lock_customer
from core.settings import get_settings
from models import StripeEvent, utcnow

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PENDING, PROCESSED, FAILED, IGNORED = "pending", "processed", "failed", "ignored"
STATUSES = (PENDING, PROCESSED, FAILED, IGNORED)
SOURCE_WEBHOOK, SOURCE_RECONCILIATION = "webhook", "reconciliation"

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")
HANDLED_TYPES = ("checkout.session.completed", *SUBSCRIPTION_EVENTS, *INVOICE_EVENTS)

# Far above any real Stripe event (they are a few kB); a bigger body is not from Stripe.
MAX_PAYLOAD_BYTES = 1024 * 1024
# A pending event that was tried but not finished this long ago lost its retry chain (a worker
# died between tries): the sweeper starts it again.
STALLED_AFTER = timedelta(hours=1)


class WebhookRejectedError(DomainError):
    """A webhook that is not a genuine, well-formed Stripe event: 400, nothing stored."""

    status_code = 400
    code = "invalid_webhook"


# -- ingress ------------------------------------------------------------------------------------


def verify_event(payload: bytes, signature: str | None) -> Obj:
    """The event in `payload` if Stripe signed it for our endpoint secret within the tolerance."""
    settings = get_settings()
    secret = settings.stripe_webhook_secret
    if not secret:
        raise ConfigurationError(
            "webhooks cannot be verified: set STRIPE_WEBHOOK_SECRET", field="STRIPE_WEBHOOK_SECRET"
        )
    if not signature:
        raise WebhookRejectedError("missing Stripe-Signature header", field="Stripe-Signature")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WebhookRejectedError("payload is too large for a Stripe event", field="body")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            signature,
            secret,
            tolerance=settings.stripe_webhook_tolerance_seconds,
        )
    except UnicodeDecodeError:
        raise WebhookRejectedError("payload is not UTF-8 text", field="body") from None
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejectedError(
            f"Stripe-Signature is not valid: {exc.user_message or exc}", field="Stripe-Signature"
        ) from None
    return parse_event(payload)


def parse_event(payload: bytes) -> Obj:
    """The event object, or a 400 naming what is wrong (checked after the signature)."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("body is not JSON", field="body") from None
    if not isinstance(event, dict):
        raise WebhookRejectedError("body is not a Stripe event object", field="body")
    if event.get("object") != "event":
        raise WebhookRejectedError('body is not a Stripe event (object != "event")', field="object")
    checks: list[tuple[str, Callable[[Any], bool]]] = [
        ("id", lambda v: isinstance(v, str) and v.startswith("evt_") and len(v) <= 255),
        ("type", lambda v: isinstance(v, str) and 0 < len(v) <= 255),
        ("created", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
        ("data", lambda v: isinstance(v, dict) and isinstance(v.get("object"), dict)),
    ]
    for field, valid in checks:
        if not valid(event.get(field)):
            raise WebhookRejectedError(
                f"Stripe event field {field!r} is missing or invalid", field=field
            )
    return event


def store_event(session: Session, event: Obj, *, source: str = SOURCE_WEBHOOK) -> bool:
    """Store the event once; True when it is new. One statement, safe under concurrency."""
    return store_events(session, [event], source=source)[0]


def store_events(
    session: Session, events: list[Obj], *, source: str = SOURCE_WEBHOOK
) -> list[bool]:
    """Store each event once, all in one round trip; per event, True when it is new.

    An event delivered twice in the same group is new only the first time.
    """
    if not events:
        return []
    received_at = utcnow()
    rows = [
        {
            "event_id": event["id"],
            "type": event["type"],
            "payload": event,
            "stripe_created": int(event["created"]),
            "source": source,
            "status": PENDING,
            "received_at": received_at,
            "attempts": 0,
        }
        for event in events
    ]
    statement = _insert_event_statement(session.get_bind().dialect.name)
    inserted = set(session.connection().execute(statement, rows).scalars())
    new: list[bool] = []
    for event in events:
        new.append(event["id"] in inserted)
        inserted.discard(event["id"])
    return new


@lru_cache(maxsize=2)
def _insert_event_statement(dialect: str):  # type: ignore[no-untyped-def]
    # Compiled once and run with many parameter sets (SQLAlchemy's "insertmanyvalues").
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(StripeEvent.__table__)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StripeEvent.event_id)
    )


# -- processing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    status: str
    note: str | None = None
    customer_id: str | None = None
    license_reissued: bool = False

    def as_dict(self) -> Obj:
        return {
            "eventId": self.event_id,
            "status": self.status,
            "note": self.note,
            "customerId": self.customer_id,
            "licenseReissued": self.license_reissued,
        }


class PermanentEventError(Exception):
    """Handling failed in a way retrying cannot fix (the event stays `failed`)."""


GatewayFactory = Callable[[], StripeGateway]


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


def _handle_checkout(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
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


def _handle_subscription(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
    obj = _data_object(event)
    return _sync_subscription(
        session,
        event,
        gateway,
        subscription_id=str(obj.get("id")),
        customer_hint=_metadata_customer(obj),
        stripe_customer_id=_ref(obj.get("customer")),
    )


def _handle_invoice(session: Session, event: Obj, gateway: GatewayFactory) -> EventOutcome:
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


HANDLERS: dict[str, Callable[[Session, Obj, GatewayFactory], EventOutcome]] = {
    "checkout.session.completed": _handle_checkout,
    **{name: _handle_subscription for name in SUBSCRIPTION_EVENTS},
    **{name: _handle_invoice for name in INVOICE_EVENTS},
}


def process_event(
    event_id: str, *, force: bool = False, gateway: GatewayFactory = get_gateway
) -> EventOutcome:
    """Handle a stored event once (again with `force`); marks it in the same transaction.

    Raises on failure, leaving the row untouched: the caller records the attempt
    (`record_failure`) and decides whether to retry. Permanent problems (an object no customer
    or plan matches, a request Stripe refuses) raise PermanentEventError.
    """
    with session_scope() as session:
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


def record_failure(event_id: str, error: BaseException, *, final: bool) -> None:
    """Count a failed attempt and keep its error; `final` leaves the event `failed`."""
    message = f"{type(error).__name__}: {error}"[:4000]
    with session_scope() as session:
        row = session.scalar(
            select(StripeEvent).where(StripeEvent.event_id == event_id).with_for_update()
        )
        if row is None or row.status in (PROCESSED, IGNORED):
            return
        row.attempts += 1
        row.last_error = message
        if final:
            row.status = FAILED


# -- beat: sweeper and reconciliation ------------------------------------------------------------


def events_to_sweep(
    session: Session, *, now: datetime | None = None, limit: int = 500
) -> list[str]:
    """Pending events no task ever ran for (or whose retries died with their worker)."""
    now = now or utcnow()
    never_tried = StripeEvent.received_at <= now - timedelta(
        seconds=get_settings().inbox_sweep_after_seconds
    )
    rows = session.scalars(
        select(StripeEvent.event_id)
        .where(
            StripeEvent.status == PENDING,
            or_(
                (StripeEvent.attempts == 0) & never_tried,
                StripeEvent.received_at <= now - STALLED_AFTER,
            ),
        )
        .order_by(StripeEvent.stripe_created, StripeEvent.id)
        .limit(limit)
    )
    return list(rows)


def reconcile(gateway: StripeGateway, *, days: int | None = None) -> list[str]:
    """Store the handled events of the last `days` that the webhook never delivered; their ids."""
    days = days if days is not None else get_settings().stripe_reconcile_days
    since = int((utcnow() - timedelta(days=days)).timestamp())
    found = list(gateway.list_events(created_gte=since, types=list(HANDLED_TYPES)))
    new_ids: list[str] = []
    with session_scope() as session:
        known = set(
            session.scalars(
                select(StripeEvent.event_id).where(
                    StripeEvent.event_id.in_([event["id"] for event in found])
                )
            )
        )
        # Oldest first, so workers see them roughly in Stripe's order.
        for event in sorted(found, key=lambda e: e.get("created") or 0):
            if event["id"] in known:
                continue
            if store_event(session, event, source=SOURCE_RECONCILIATION):
                new_ids.append(event["id"])
    return new_ids


def fetch_and_store(gateway: StripeGateway, event_id: str) -> bool:
    """Store one event read from Stripe (for a replay of an event the webhook never brought)."""
    event = gateway.retrieve_event(event_id)
    with session_scope() as session:
        return store_event(session, event, source=SOURCE_RECONCILIATION)


# -- operator's view -----------------------------------------------------------------------------


def recent_events(
    session: Session, *, status: str | None = None, limit: int = 50
) -> list[StripeEvent]:
    query = select(StripeEvent).order_by(StripeEvent.stripe_created.desc(), StripeEvent.id.desc())
    if status:
        query = query.where(StripeEvent.status == status)
    return list(session.scalars(query.limit(limit)))


def get_event(session: Session, event_id: str) -> StripeEvent | None:
    return session.scalar(select(StripeEvent).where(StripeEvent.event_id == event_id))
