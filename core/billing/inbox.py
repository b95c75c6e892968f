"""The Stripe event inbox: verify, store once, sweep, and the operator's view of it.

The webhook path (`verify_event`, `store_events`) never calls Stripe: it checks the signature,
stores the event under its unique Stripe id and returns. A worker then handles it
(`core.billing.handlers.process_event`), locking the stored row and marking it in the same
transaction as its effect, so an event is applied once however often it is delivered, enqueued or
replayed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.billing import event_attempts, event_customers
from core.db_steps import Query, Steps, insert_many, many_rows, run_steps
from core.errors import ConfigurationError, DomainError
from core.ingress import Ingress
from core.ingress.batcher import Coalescer
from core.settings import get_settings
from models import StripeEvent, utcnow

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PENDING, PROCESSED, FAILED, IGNORED = "pending", "processed", "failed", "ignored"
STATUSES = (PENDING, PROCESSED, FAILED, IGNORED)
SOURCE_WEBHOOK, SOURCE_RECONCILIATION = "webhook", "reconciliation"

# Far above any real Stripe event (they are a few kB); a bigger body is not from Stripe.
MAX_PAYLOAD_BYTES = 1024 * 1024
# Events of an event destination that sends thin events (v2): id, type and the related object,
# no data (docs.stripe.com/api/v2/core/events/object).
THIN_EVENT_OBJECT = "v2.core.event"
# A pending event that was tried but not finished this long ago lost its retry chain (a worker
# died between tries): the sweeper starts it again.
STALLED_AFTER = timedelta(hours=1)


class WebhookRejectedError(DomainError):
    """A webhook that is not a genuine, well-formed Stripe event: 400, nothing stored."""

    status_code = 400
    code = "invalid_webhook"


# -- ingress ------------------------------------------------------------------------------------


def verify_event(payload: bytes, signature: str | None) -> Obj:
    """The event in `payload` if Stripe signed it within the tolerance with the secret of the
    destination that sends its kind: a thin event with STRIPE_THIN_WEBHOOK_SECRET, a snapshot
    event with STRIPE_WEBHOOK_SECRET (so neither kind passes signed for the other)."""
    settings = get_settings()
    name, secret = "STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret
    if _claims_thin(payload):
        name, secret = "STRIPE_THIN_WEBHOOK_SECRET", settings.stripe_thin_webhook_secret
    if not secret:
        raise ConfigurationError(f"webhooks cannot be verified: set {name}", field=name)
    if not signature:
        raise WebhookRejectedError("missing Stripe-Signature header", field="Stripe-Signature")
    if not signature.isascii():
        # Stripe signs with hex digests; the SDK's constant-time comparison raises TypeError on
        # a non-ASCII string, which would be a 500 for what is only a bad signature.
        raise WebhookRejectedError(
            "Stripe-Signature is not valid: it must be ASCII", field="Stripe-Signature"
        )
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


def _claims_thin(payload: bytes) -> bool:
    """Whether the (not yet verified) payload says it is a thin event: only which secret to
    verify it with; the signature then proves it."""
    try:
        claimed = json.loads(payload)
    except ValueError:
        return False
    return isinstance(claimed, dict) and claimed.get("object") == THIN_EVENT_OBJECT


def parse_event(payload: bytes) -> Obj:
    """The event object, or a 400 naming what is wrong (checked after the signature)."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("body is not JSON", field="body") from None
    if not isinstance(event, dict):
        raise WebhookRejectedError("body is not a Stripe event object", field="body")
    thin = event.get("object") == THIN_EVENT_OBJECT
    if event.get("object") != "event" and not thin:
        raise WebhookRejectedError('body is not a Stripe event (object != "event")', field="object")
    checks: list[tuple[str, Callable[[Any], bool]]] = [
        ("id", lambda v: isinstance(v, str) and v.startswith("evt_") and len(v) <= 255),
        ("type", lambda v: isinstance(v, str) and 0 < len(v) <= 255),
        ("created", lambda v: created_epoch(v) is not None),
    ]
    if not thin:
        # A thin event carries no data: its handler reads the full event from Stripe.
        checks.append(("data", lambda v: isinstance(v, dict) and isinstance(v.get("object"), dict)))
    for field, valid in checks:
        if not valid(event.get(field)):
            raise WebhookRejectedError(
                f"Stripe event field {field!r} is missing or invalid", field=field
            )
    return event


def created_epoch(value: Any) -> int | None:
    """An event's `created`: epoch seconds (v1 events) or an ISO 8601 time (v2 thin events)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and len(value) <= 40:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def store_event(session: Session, event: Obj, *, source: str = SOURCE_WEBHOOK) -> bool:
    """Store the event once; True when it is new. One statement, safe under concurrency."""
    return store_events(session, [event], source=source)[0]


def store_events(
    session: Session, events: list[Obj], *, source: str = SOURCE_WEBHOOK
) -> list[bool]:
    """`storing_events` in the caller's session."""
    dialect = session.get_bind().dialect.name
    return run_steps(session, storing_events(dialect, events, source=source))


_EVENT_COLUMNS = (
    "event_id",
    "type",
    "payload",
    "stripe_created",
    "source",
    "status",
    "received_at",
    "attempts",
)


def storing_events(
    dialect: str, events: list[Obj], *, source: str = SOURCE_WEBHOOK
) -> Steps[list[bool]]:
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
            "stripe_created": created_epoch(event["created"]) or 0,
            "source": source,
            "status": PENDING,
            "received_at": received_at,
            "attempts": 0,
        }
        for event in events
    ]
    statement = insert_many(
        StripeEvent.__table__, _EVENT_COLUMNS, ("event_id",), dialect, ("event_id",)
    )
    returned = yield Query(statement, many_rows(dialect, rows, _EVENT_COLUMNS))
    inserted = {row["event_id"] for row in returned}
    new: list[bool] = []
    for event in events:
        new.append(event["id"] in inserted)
        inserted.discard(event["id"])
    return new


# -- processing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    status: str
    note: str | None = None
    customer_id: str | None = None
    license_reissued: bool = False
    # A paid upgrade's promotion code waits on this Stripe subscription: applied once the
    # handling committed, never under the event's row lock (`core.billing.promotions`).
    promotion_waiting: str | None = None

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


def record_failure(
    session: Session,
    event_id: str,
    error: BaseException,
    *,
    final: bool,
    trigger: str = event_attempts.WORKER,
    actor: str | None = None,
) -> None:
    """Count a failed attempt and keep its error (and the attempt, `trigger` and `actor` saying
    who ran it); `final` leaves the event `failed`.

    The one exception to "one transaction per task": the attempt that failed was rolled back, so
    the caller records its failure in a transaction of its own.
    """
    message = f"{type(error).__name__}: {error}"[:4000]
    row = session.scalar(
        select(StripeEvent).where(StripeEvent.event_id == event_id).with_for_update()
    )
    if row is None or row.status in (PROCESSED, IGNORED):
        return
    row.attempts += 1
    row.last_error = message
    # A failed event is listed under its customer too (the one rule: core.billing.event_customers).
    event_customers.assign_customer(session, row)
    if final:
        row.status = FAILED
    event_attempts.record_attempt(
        session,
        event_id,
        FAILED if final else event_attempts.RETRYING,
        trigger=trigger,
        actor=actor,
        customer_id=row.customer_id,
        error=message,
    )


# -- beat: the sweeper ------------------------------------------------------------


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


EventIngress = Ingress[dict[str, Any], bool, str]


def start_event_ingress(publish: Callable[[list[str]], None]) -> EventIngress:
    """The Stripe event ingress of an API process, made at its start-up: concurrent deliveries
    are stored together (`storing_events`, one INSERT a group), and the ids of the new events go
    to `publish` together (the caller's task publish; the sweeper has whatever it misses)."""
    return Ingress.start(storing_events, Coalescer(publish), _new_event_ids)


def _new_event_ids(events: list[dict[str, Any]], created: Sequence[bool | Exception]) -> list[str]:
    return [event["id"] for event, new in zip(events, created, strict=True) if new is True]
