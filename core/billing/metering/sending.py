"""Sending recorded overage meter events (`core.billing.metering.days`) to Stripe, never twice.

Stripe dedups meter events by identifier, but only for about 24 hours. So:

1. `claim_attempt` notes, in a transaction committed before Stripe is called, that an attempt
   whose outcome is not known yet begins (`outcome_unknown_since`, kept from the first such one).
2. `send_event` sends the row with its fixed identifier; `record_outcome` stores Stripe's answer.
   Delivered, or refused as a duplicate (Stripe had it): sent. Refused otherwise: proof that this
   attempt did not land, so its doubt is lifted; one Stripe refuses OVERAGE_EVENT_MAX_ATTEMPTS
   times is marked failed for an operator (`core.billing.metering.events`). Stripe unreachable or
   failing, or a crash before the answer is stored: the outcome stays unknown.
3. Beat resends what is unsent every OVERAGE_EVENT_RETRY_INTERVAL_SECONDS (hourly), well inside
   Stripe's window: a resend of an event Stripe took is refused as a duplicate. Once an outcome
   has been unknown for OVERAGE_EVENT_RESEND_WINDOW_HOURS, Stripe may have forgotten the
   identifier and would bill a resend again: the event is set aside (`unconfirmed_at`) for an
   operator to look in Stripe and settle (`core.billing.metering.events.settle_unconfirmed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing.gateway import (
    DuplicateMeterEventError,
    StripeGateway,
    StripeRequestError,
    StripeUnavailableError,
)
from core.billing.metering.days import BillingWindow, Stamp, stamp_for
from core.billing.metering.events import UNSENT, in_state
from core.billing.metering.meters import CUSTOMER_KEY, VALUE_KEY, overage_billed
from core.db import record_from
from core.errors import DomainError
from core.settings import get_settings
from models import OverageMeterEvent, Subscription, utcnow


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    customer_id: str
    day: date
    value: int
    identifier: str
    event_name: str
    stripe_customer_id: str
    # Where an event sent now is billed, as the customer's subscription row says (which period
    # the day's own timestamp lands in, whether that one is invoiced already, whether any item
    # still bills it); None: no subscription row (nothing bills it).
    billing: BillingWindow | None = None


def unsent_events(
    session: Session, *, limit: int = 500, stripe_customer_id: str | None = None
) -> list[PendingEvent]:
    """Meter events waiting to be sent, oldest day first (any day: earlier failures included, but
    not those given up on after OVERAGE_EVENT_MAX_ATTEMPTS refusals, nor those set aside); only
    those addressed to `stripe_customer_id` when given."""
    query = (
        select(OverageMeterEvent, Subscription)
        .outerjoin(Subscription, Subscription.customer_id == OverageMeterEvent.customer_id)
        .where(in_state(UNSENT))
    )
    if stripe_customer_id is not None:
        query = query.where(OverageMeterEvent.stripe_customer_id == stripe_customer_id)
    found = session.execute(
        query.order_by(OverageMeterEvent.day, OverageMeterEvent.id).limit(limit)
    ).all()
    return [record_from(PendingEvent, row, billing=billing_window(sub)) for row, sub in found]


def billing_window(sub: Subscription | None) -> BillingWindow | None:
    if sub is None:
        return None
    return BillingWindow(
        period_starts_at=sub.current_period_starts_at,
        period_ends_at=sub.current_period_ends_at,
        metered_since=sub.metered_since,
        live=sub.stripe_subscription_id is not None
        and overage_billed(sub.plan, sub.status, is_trial=False),
        # Cancelled now (not at the period's end, where Stripe's `canceled_at` is only when it
        # was asked): the final invoice read the meter then.
        canceled_at=None if sub.cancel_at_period_end else sub.canceled_at,
    )


def _resend_cutoff(now: datetime) -> datetime:
    """An outcome unknown since before this may lie outside Stripe's duplicate window."""
    return now - timedelta(hours=get_settings().overage_event_resend_window_hours)


def _unconfirmed_note(since: datetime) -> str:
    return (
        f"outcome unknown since {since.isoformat()}, longer than Stripe refuses a resent "
        "identifier: not resent, so it is never billed twice; look for it in Stripe, then "
        "`billing stripe meter-settle ID --in-stripe` or `--not-in-stripe`"
    )


def set_aside_unconfirmed(session: Session, now: datetime | None = None) -> list[int]:
    """Set aside every unsent event whose outcome has been unknown for longer than the resend
    window; their ids. The caller commits. Safe to run again: only waiting events are touched."""
    now = now or utcnow()
    rows = session.scalars(
        select(OverageMeterEvent)
        .where(
            in_state(UNSENT),
            OverageMeterEvent.outcome_unknown_since < _resend_cutoff(now),
        )
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        _set_aside(row, now)
    session.flush()
    return sorted(row.id for row in rows)


def _set_aside(row: OverageMeterEvent, now: datetime) -> None:
    assert row.outcome_unknown_since is not None
    row.unconfirmed_at = now
    row.last_error = _unconfirmed_note(row.outcome_unknown_since)


@dataclass(frozen=True, slots=True)
class Claim:
    # When the attempt began (send it now), or None: it must not be sent.
    began: datetime | None
    # Not to be sent because it was set aside now: its outcome was unknown for too long.
    set_aside: bool = False


def claim_attempt(session: Session, event_id: int, now: datetime | None = None) -> Claim:
    """Note that an attempt to send `event_id` begins now, before Stripe is called (the caller
    commits first, so a crash during the call leaves the doubt on record). Nothing to send when
    the event was delivered, failed or set aside meanwhile, or is set aside now because its
    outcome has been unknown for longer than the resend window."""
    now = now or utcnow()
    row = session.get(OverageMeterEvent, event_id, with_for_update=True)
    if row is None or row.sent_at is not None or row.failed_at is not None:
        return Claim(None)
    if row.unconfirmed_at is not None:
        return Claim(None)
    if row.outcome_unknown_since is not None and row.outcome_unknown_since < _resend_cutoff(now):
        _set_aside(row, now)
        session.flush()
        return Claim(None, set_aside=True)
    if row.outcome_unknown_since is None:
        row.outcome_unknown_since = now
    session.flush()
    return Claim(now)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    event_id: int
    delivered: bool
    # Worth trying again soon (Stripe down or rate limiting), as opposed to refused for good.
    retryable: bool
    response: dict[str, Any] | None = None
    error: str | None = None
    # Sent stamped into the open period (its own day's period was invoiced already).
    carried_into: datetime | None = None
    # Not sent: no invoice would ever bill it (marked failed at once, with this reason).
    unbillable: bool = False

    @property
    def refused(self) -> bool:
        """Stripe answered and did not take the event: proof this attempt did not land."""
        return not self.delivered and not self.retryable


def send_event(
    gateway: StripeGateway, event: PendingEvent, now: datetime | None = None
) -> SendOutcome:
    """Send one meter event to Stripe (no database work: call it outside any transaction),
    stamped on its day or, once that day's period is invoiced, into the open one
    (`days.stamp_for`)."""
    if event.billing is None:
        stamp = Stamp(0, None, unbillable="no subscription to bill it")
    else:
        stamp = stamp_for(event.day, event.billing, now or utcnow())
    if stamp.unbillable is not None:
        return SendOutcome(event.id, False, False, error=stamp.unbillable, unbillable=True)
    try:
        answer = gateway.create_meter_event(
            event_name=event.event_name,
            identifier=event.identifier,
            payload={CUSTOMER_KEY: event.stripe_customer_id, VALUE_KEY: str(event.value)},
            timestamp=stamp.timestamp,
        )
    except DuplicateMeterEventError as exc:
        duplicate = {"duplicate": True, "identifier": event.identifier, "message": exc.message}
        return SendOutcome(event.id, True, False, duplicate)
    except StripeUnavailableError as exc:
        # Unreachable, timed out, or 409/429/5xx: whether Stripe took it is not known.
        return SendOutcome(event.id, False, True, error=exc.message)
    except (StripeRequestError, DomainError) as exc:
        return SendOutcome(event.id, False, False, error=exc.message)
    return SendOutcome(event.id, True, False, answer, carried_into=stamp.carried_into)


def record_outcome(session: Session, outcome: SendOutcome, attempt_began: datetime) -> bool:
    """Store Stripe's answer to the attempt `claim_attempt` began at `attempt_began`; the caller
    commits. True when this refusal was the last one allowed: the event is marked failed and no
    run sends it again (an operator may, `core.billing.metering.events.retry_failed`). Stripe being
    down never fails an event."""
    row = session.get(OverageMeterEvent, outcome.event_id, with_for_update=True)
    if row is None or row.sent_at is not None:
        return False
    row.attempts += 1
    failed_for_good = False
    if outcome.delivered:
        row.sent_at = utcnow()
        row.carried_into = outcome.carried_into
        row.stripe_response = outcome.response
        row.last_error = None
        row.failed_at = None
        row.outcome_unknown_since = None
    else:
        row.last_error = outcome.error
    if outcome.refused:
        # Only the doubt this attempt raised is lifted: an earlier attempt may still have landed.
        if row.outcome_unknown_since == attempt_began:
            row.outcome_unknown_since = None
        row.refusals += 1
        if outcome.unbillable or row.refusals >= get_settings().overage_event_max_attempts:
            row.failed_at = utcnow()
            failed_for_good = True
    session.flush()
    return failed_for_good
