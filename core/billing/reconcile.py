"""Reconciliation: what the webhook missed, found by asking Stripe (beat jobs and a replay).

- Missed events: Stripe's recent events are listed and any not stored go through the inbox like
  any delivery, so a worker handles them exactly as it would have handled the webhook.
- Drift: each known customer's live subscriptions are listed and compared with its row; what
  differs is repaired through the same apply path (`core.billing.sync`), and a second live
  subscription is recorded as a billing conflict.
- Invoices left open: a subscription we canceled now whose unpaid invoices for time it will not
  serve are still open (the cancel's voids never ran) has them voided as the cancel would have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.billing import invoices, issues, promotions, statuses
from core.billing.cancel_now import CANCEL_NOW_REQUESTED
from core.billing.gateway import (
    StripeGateway,
    StripeNotConfiguredError,
    StripeRequestError,
    StripeUnavailableError,
)
from core.billing.handlers import HANDLED_TYPES
from core.billing.inbox import SOURCE_RECONCILIATION, created_epoch, store_event
from core.billing.metering.events import ERROR_REPORT_EVENT
from core.billing.metering.meters import overage_price_for_plan
from core.billing.metering.moves import fit_overage_item
from core.billing.repository import get_subscription
from core.billing.statuses import SubscriptionStatus
from core.billing.sync import (
    CONFLICT,
    UnmappedStripeObjectError,
    apply_subscription,
    decide,
    differs,
    subscription_plan,
)
from core.customers.lock import get_for_update
from core.customers.service import get_customer
from core.db import Transaction
from core.settings import get_settings
from models import AuditEntry, Customer, StripeEvent, utcnow

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# Handled event types Stripe sends only as thin events, through their own destination.
THIN_TYPES = frozenset({ERROR_REPORT_EVENT})


@dataclass
class MissedEvents:
    # The ids stored now, to be handled.
    stored: list[str]
    # Why the thin (v2) events could not be listed this run, or None: the v1 ones were anyway.
    thin_failed: str | None = None


def store_missed_events(
    session: Session, gateway: StripeGateway, *, days: int | None = None
) -> MissedEvents:
    """Store the handled events of the last `days` that the webhooks never delivered; their ids.

    Snapshot events are listed from `/v1/events`; thin ones (v1.billing.meter.*) are v2 events,
    listed from `/v2/core/events` and stored as their destination would have delivered them
    (without data: the handler reads the full event by id). Either kind is stored once by id,
    so one the webhook brings too, or a later run finds again, is handled once. A thin listing
    Stripe refuses (a restricted key without v2 access) or fails (a v2 outage) is logged and
    reported (`thin_failed`); the snapshot events are stored all the same."""
    days = days if days is not None else get_settings().stripe_reconcile_days
    since = int((utcnow() - timedelta(days=days)).timestamp())
    snapshot_types = [kind for kind in HANDLED_TYPES if kind not in THIN_TYPES]
    found = list(gateway.list_events(created_gte=since, types=snapshot_types))
    thin_failed = None
    try:
        thin = gateway.list_thin_events(created_gte=since, types=sorted(THIN_TYPES))
        found += [as_delivered(event) for event in thin]
    except (StripeRequestError, StripeNotConfiguredError, StripeUnavailableError) as exc:
        # 403 (a restricted key without v2 access) is StripeNotConfiguredError.
        thin_failed = exc.message
        log.error("thin (v2) events not listed, v1 events reconciled without them: %s", exc)
    known = set(
        session.scalars(
            select(StripeEvent.event_id).where(
                StripeEvent.event_id.in_([event["id"] for event in found])
            )
        )
    )
    new_ids: list[str] = []
    # Oldest first, so workers see them roughly in Stripe's order.
    for event in sorted(found, key=lambda e: created_epoch(e.get("created")) or 0):
        if event["id"] in known:
            continue
        if store_event(session, event, source=SOURCE_RECONCILIATION):
            new_ids.append(event["id"])
    return MissedEvents(new_ids, thin_failed)


def as_delivered(event: Obj) -> Obj:
    """A listed v2 event as an event destination delivers it: thin, without its data."""
    return {key: value for key, value in event.items() if key != "data"}


def fetch_and_store(session: Session, gateway: StripeGateway, event_id: str) -> bool:
    """Store one event read from Stripe (for a replay of an event the webhook never brought)."""
    event = gateway.retrieve_event(event_id)
    return store_event(session, event, source=SOURCE_RECONCILIATION)


# -- drift: live subscriptions compared with local rows ----------------------------------------


def customers_with_stripe(session: Session, *, after: int = 0, limit: int = 200) -> list[str]:
    """Customers known to Stripe whose row id is above `after`, in row order (a paged sweep)."""
    return list(
        session.scalars(
            select(Customer.customer_id)
            .where(Customer.stripe_customer_id.is_not(None), Customer.id > after)
            .order_by(Customer.id)
            .limit(limit)
        )
    )


def last_row_id(session: Session, customer_ids: list[str]) -> int:
    """The row id to continue a sweep after (the largest of the page)."""
    if not customer_ids:
        return 0
    found = session.scalar(
        select(func.max(Customer.id)).where(Customer.customer_id.in_(customer_ids))
    )
    return int(found or 0)


def repair_customer(
    session: Session, gateway: StripeGateway, customer_id: str, *, transaction: Transaction
) -> int:
    """Compare the customer's subscriptions in Stripe with its row and repair what differs
    through the same apply path as the webhooks; how many fixes (changes and newly recorded
    conflicts). Stripe is read first, the customer locked after (no Stripe call under it)."""
    customer = get_customer(session, customer_id)
    stripe_customer_id = customer.stripe_customer_id
    if not stripe_customer_id:
        return 0
    row = get_subscription(session, customer_id)
    followed = row.stripe_subscription_id if row else None
    read_at = utcnow()
    subs = gateway.list_subscriptions(stripe_customer_id)
    if followed and followed not in {sub["id"] for sub in subs}:
        # The one the row follows ended (lists show live ones only): its final state too.
        subs.append(gateway.retrieve_subscription(followed))
    # Still before the lock: the followed subscription's overage item made to match its plan,
    # a paid upgrade's promotion code its follow-up task never applied (`promotions`), and the
    # invoices a cancellation of ours left open voided.
    fixed, voided = 0, []
    for index, sub in enumerate(subs):
        if sub["id"] == followed:
            repaired = repair_overage_item(transaction, gateway, sub)
            if repaired is not None:
                subs[index] = repaired
                fixed += 1
            if promotions.waiting(subs[index]):
                subs[index] = promotions.apply_waiting(
                    transaction, gateway, subs[index], customer_id
                )
                fixed += 1
            voided = void_left_open(session, gateway, sub, customer_id)
    if voided:
        # Audited at once, in a transaction of its own: the lock below may time out, or this
        # transaction fail, and a later run finds them void and has nothing to record.
        log.warning("reconciliation voided %s of canceled %s", ", ".join(voided), followed)
        with transaction() as own:
            audit.record(
                own,
                "subscription.void_unserved",
                customer_id=customer_id,
                reason="reconciliation: invoices of a subscription canceled now were left open",
                after={"subscription": followed, "voided": voided},
            )
        fixed += len(voided)
    customer = get_for_update(session, customer_id)
    # The followed subscription first, so a second live one is judged against the current row.
    for sub in sorted(subs, key=lambda found: found["id"] != followed):
        row = get_subscription(session, customer_id)
        verdict = decide(row, sub)[0]
        new_conflict = verdict == CONFLICT and not issues.has_open_conflict(session, sub["id"])
        if not (new_conflict or differs(row, sub)):
            continue
        outcome = apply_subscription(
            session, customer, sub, reason="reconciliation: drift repaired", read_at=read_at
        )
        fixed += int(new_conflict or outcome.changed)
    return fixed


def void_left_open(
    session: Session, gateway: StripeGateway, sub: Obj, customer_id: str
) -> list[str]:
    """Void what cancelling `sub` now should have voided and did not (a crash or a failure
    between the cancel and the voids, the retry never made): its unpaid invoices for time it
    will not serve (`invoices.unserved`), the usage they billed for served time billed again
    first (`void_unserved`); the ids voided. Only a cancellation asked for
    (`cancellation_details.reason` cancellation_requested, not Smart Retries giving up) that
    ended the subscription at once (`ended_at` at `canceled_at`: at a period's end the period
    was served and its invoice is owed), within the last STRIPE_RECONCILE_DAYS, and one of ours:
    `cancel_now.end_now` audited `CANCEL_NOW_REQUESTED` for the customer before asking Stripe
    (`cancellation_details` says the same of a Dashboard cancel, which is not ours to settle).
    Only draft or open invoices made since the cut-short period began (`left_open`): an older
    one bills a period served, and an `uncollectible` one was written off by an operator; both
    stay as they are. Safe to repeat: a void invoice is unpaid no more."""
    canceled_at, ended_at = sub.get("canceled_at"), sub.get("ended_at")
    reason = (sub.get("cancellation_details") or {}).get("reason")
    if sub.get("status") != SubscriptionStatus.CANCELED or reason != "cancellation_requested":
        return []
    if canceled_at is None or ended_at is None or int(ended_at) - int(canceled_at) > 60:
        return []
    since = utcnow() - timedelta(days=get_settings().stripe_reconcile_days)
    if int(ended_at) < since.timestamp():
        return []
    if not _canceled_by_us(session, customer_id, since):
        return []
    period = invoices.current_period(sub)
    found = left_open(gateway.subscription_invoices(str(sub["id"])), canceled_at, period)
    return gateway.void_unserved(found, period) if found else []


def left_open(found: list[Obj], canceled_at: Any, period: tuple[int, int] | None) -> list[Obj]:
    """Of a canceled subscription's invoices, those its cancel now should have voided: draft or
    open (never `uncollectible`: written off), covering the `period` the cancel cut short (its
    renewal) or made since it began (an upgrade's), as `invoices.unserved` judges them."""
    if period is None:
        return []
    recent = [
        invoice
        for invoice in found
        if invoice.get("status") in {"draft", "open"}
        and (invoices.covers(invoice, period) or int(invoice.get("created") or 0) >= period[0])
    ]
    return invoices.unserved(recent, canceled_at, period)


def _canceled_by_us(session: Session, customer_id: str, since: datetime) -> bool:
    """Whether a cancel now of ours was asked for the customer since `since`."""
    found = session.scalar(
        select(AuditEntry.id)
        .where(
            AuditEntry.customer_id == customer_id,
            AuditEntry.action == CANCEL_NOW_REQUESTED,
            AuditEntry.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


def repair_overage_item(transaction: Transaction, gateway: StripeGateway, sub: Obj) -> Obj | None:
    """Give a paying subscription the overage item its plan needs; Stripe's answer, or None
    when there was nothing to repair.

    Subscriptions sold before the overage prices existed have no metered item, so their devices
    above the limit went unbilled: the plan's item is added. An item of another plan's price is
    swapped, and one left on a plan that is not metered (an upgrade to enterprise paid after it
    had waited in a pending update) is removed, the usage it metered this period billed with it
    (`fit_overage_item`; a classic-mode subscription is migrated to flexible first). A
    subscription with a pending update is left alone until it is paid or expires: its items are
    about to change.
    """
    if sub.get("status") not in statuses.METERED or sub.get("pending_update"):
        return None
    try:
        plan, _ = subscription_plan(sub)
    except UnmappedStripeObjectError:
        return None
    try:
        wanted = overage_price_for_plan(gateway, plan)
    except StripeNotConfiguredError:
        # No overage prices set up yet (`billing stripe setup`): drift repair goes on without.
        return None
    return fit_overage_item(transaction, gateway, sub, wanted)
