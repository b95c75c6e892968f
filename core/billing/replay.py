"""Handling one Stripe event again now: the console's "Process again" and "Fetch from Stripe",
and `billing stripe replay`. The same steps for every door:

1. an event never received is fetched from Stripe and stored (its own transaction);
2. it is handled again (`force`: a handled event too, the handlers being idempotent), the
   attempt recorded with the door and the operator, in the handling's transaction;
3. a failure rolls that back and is recorded in a transaction of its own (the attempt, its
   error; for good when retrying cannot help).

It owns its transactions, as a task does, because a failure must be recorded after the
handling's rollback. An operator's steps (`actor` named) are audited in their transactions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core import audit
from core.billing import handlers, inbox, promotions, reconcile
from core.billing.gateway import StripeGateway, get_gateway
from core.billing.inbox import EventOutcome, PermanentEventError
from core.db import session_scope
from core.errors import DomainError, InvalidInputError

EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,250}")


@dataclass(frozen=True, slots=True)
class Replay:
    event_id: str
    # The event was not stored: it was fetched from Stripe first.
    fetched: bool
    outcome: EventOutcome | None
    # Why the fetch or the handling failed (recorded on the event), or None.
    error: str | None = None


def checked_event_id(value: object, field: str = "eventId") -> str:
    """A Stripe event id (evt_…), or a 422 naming `field`."""
    if not isinstance(value, str) or not EVENT_ID.fullmatch(value.strip()):
        raise InvalidInputError(f"{field} must be a Stripe event id (evt_…)", field=field)
    return value.strip()


def _audit(
    session: Session, action: str, actor: str | None, event_id: str, **after: object
) -> None:
    """The audit entry of an operator's step, in the step's transaction."""
    if actor is None:
        return
    audit.act_as(session, actor)
    customer_id = after.pop("customer_id", None)
    if not isinstance(customer_id, str):
        # Whose event it is as stored (handling may not name one: ignored, failed, fetched).
        stored = inbox.get_event(session, event_id)
        customer_id = stored.customer_id if stored is not None else None
    audit.record(
        session,
        action,
        customer_id=customer_id if isinstance(customer_id, str) else None,
        after={"event_id": event_id, **after},
    )


def replay_event(
    event_id: str,
    *,
    trigger: str,
    actor: str | None = None,
    gateway: Callable[[], StripeGateway] = get_gateway,
) -> Replay:
    """Handle `event_id` again now, fetching it from Stripe if it never arrived."""
    event_id = checked_event_id(event_id)
    with session_scope() as session:
        known = inbox.get_event(session, event_id) is not None
    if not known:
        try:
            with session_scope() as session:
                reconcile.fetch_and_store(session, gateway(), event_id)
                _audit(session, "stripe_event.fetch", actor, event_id)
        except DomainError as exc:
            return Replay(event_id, False, None, f"not fetched from Stripe: {exc.message}")
    try:
        with session_scope() as session:
            outcome = handlers.process_event(
                session, event_id, force=True, gateway=gateway, trigger=trigger, actor=actor
            )
            _audit(
                session,
                "stripe_event.replay",
                actor,
                event_id,
                customer_id=outcome.customer_id,
                status=outcome.status,
            )
    except (PermanentEventError, DomainError) as exc:
        final = isinstance(exc, PermanentEventError)
        with session_scope() as session:
            inbox.record_failure(session, event_id, exc, final=final, trigger=trigger, actor=actor)
            _audit(session, "stripe_event.replay", actor, event_id, status="failed")
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        return Replay(event_id, not known, None, message)
    if outcome.promotion_waiting and outcome.customer_id:
        # After the handling committed: no Stripe write under the event's row lock.
        try:
            promotions.apply_waiting_to(
                session_scope, gateway(), outcome.promotion_waiting, outcome.customer_id
            )
        except DomainError as exc:
            note = f"handled; its promotion code not applied yet ({exc.message}): reconciliation"
            return Replay(event_id, not known, outcome, note)
    return Replay(event_id, not known, outcome)
