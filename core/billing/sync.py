"""Bringing a customer's local subscription in line with a Stripe subscription.

Callers (event handlers, plan changes, reconciliation) read the subscription from Stripe first,
then lock the customer (`customers.lock.get_for_update`) and `apply_subscription` with the time
the read started. No Stripe call waits under the lock; order is kept by that time instead: a read
that started before the one last applied is not applied (every change in Stripe sends an event
whose handler reads again, so the newest state always arrives last).

A customer has one subscription row, so a snapshot of a *different* Stripe subscription than the
one the row follows needs a rule (`decide`):

- the row follows no Stripe subscription yet (trial): any subscription of the customer is applied;
- the row follows an ended subscription (or was returned to the trial tier): a live one is applied;
- an ended subscription never replaces the one the row follows, and a second live one never
  replaces a live one: it is recorded as a billing conflict (`core.billing.issues`) for an
  operator to sort out the double billing;
- a row returned to the trial tier by `billing customer deactivate` keeps following the canceled
  subscription, so its late `deleted`/`updated` events cannot bring the paid plan back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing import entitlements, invoices, issues, statuses
from core.billing.catalogue import plan_for_price as plan_for_price  # re-exported
from core.billing.metering.meters import flat_item, overage_billed
from core.billing.repository import customer_of_subscription, get_subscription
from core.billing.statuses import SubscriptionStatus
from core.licensing.service import reissue_license
from core.plans import Plan
from models import Customer, Subscription, utcnow

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class UnmappedStripeObjectError(Exception):
    """A Stripe object this service cannot tie to a customer or a plan: retrying will not help."""


@dataclass(frozen=True)
class SyncOutcome:
    customer_id: str
    applied: bool
    changed: bool
    license_reissued: bool
    note: str


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _id_of(value: Any) -> str | None:
    """A Stripe reference, expanded (an object) or not (its id)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


# -- plans and periods ----------------------------------------------------------------------


def subscription_item(sub: Obj) -> Obj | None:
    """The plan's flat-price item; never the metered overage item a subscription also carries."""
    return flat_item(sub)


def subscription_plan(sub: Obj) -> tuple[Plan, str]:
    item = subscription_item(sub)
    price = item.get("price") if item else None
    plan = plan_for_price(price)
    if plan is None or not price:
        price_id = price.get("id") if price else None
        raise UnmappedStripeObjectError(
            f"subscription {sub.get('id')} has price {price_id!r}, which is no Zemfyre plan: "
            "set STRIPE_PRICE_* or give the price a zemfyre_*_monthly lookup key"
        )
    return plan, price["id"]


def period_end(sub: Obj) -> datetime | None:
    # Since API version 2025-03-31.basil the period lives on each item only.
    return _ts((subscription_item(sub) or {}).get("current_period_end"))


def period_start(sub: Obj) -> datetime | None:
    return _ts((subscription_item(sub) or {}).get("current_period_start"))


def paid_through(sub: Obj, previous: datetime | None) -> datetime | None:
    """The end of the last period Stripe was paid for (see core.billing.entitlements).

    An active subscription whose period's invoice is paid (the one covering the period, not
    merely the latest: `core.billing.invoices`) is paid to its period end. A trial is
    free time, never paid: like a renewal not yet charged or a failed charge, it leaves the date
    where it was, or, first seen so, at the start of what is not paid: the period's start, or the
    trial's start when nothing was paid since (past_due grace is measured from this date, and a
    trial is never grace for itself). A date inside the trial (a trial once counted as paid) is
    taken back to the trial's start.
    """
    status, end, start = sub.get("status"), period_end(sub), period_start(sub)
    trial = _trial(sub)
    if previous is not None and trial is not None and trial[0] < previous <= trial[1]:
        previous = trial[0]
    paid_now = status == SubscriptionStatus.ACTIVE and invoices.period_paid(sub) is not False
    if paid_now and end is not None:
        return max(previous, end) if previous is not None else end
    if previous is not None:
        return previous
    if trial is not None and start is not None and start <= trial[1]:
        return trial[0]
    return start


def _trial(sub: Obj) -> tuple[datetime, datetime] | None:
    """The subscription's trial (start, end), if it has (or had) one; Stripe keeps both."""
    start, end = _ts(sub.get("trial_start")), _ts(sub.get("trial_end"))
    return (start, end) if start is not None and end is not None else None


# -- finding and locking the customer --------------------------------------------------------


def find_customer_id(
    session: Session,
    *,
    customer_hint: str | None = None,
    stripe_customer_id: str | None = None,
    stripe_subscription_id: str | None = None,
) -> str | None:
    """Our customer for a Stripe object: metadata `customerId` first (we put it on every
    checkout and subscription), then the stored Stripe customer id, then the subscription id."""
    if customer_hint:
        found = session.scalar(
            select(Customer.customer_id).where(Customer.customer_id == customer_hint)
        )
        if found:
            return found
    if stripe_customer_id:
        found = session.scalar(
            select(Customer.customer_id).where(Customer.stripe_customer_id == stripe_customer_id)
        )
        if found:
            return found
    if stripe_subscription_id:
        return customer_of_subscription(session, stripe_subscription_id)
    return None


def remember_stripe_customer(session: Session, customer: Customer, stripe_customer_id: Any) -> None:
    """Store the Stripe customer id on first sight, unless another customer already has it."""
    stripe_id = _id_of(stripe_customer_id)
    if not stripe_id or customer.stripe_customer_id:
        return
    taken = session.scalar(
        select(Customer.customer_id).where(Customer.stripe_customer_id == stripe_id)
    )
    if taken is None:
        customer.stripe_customer_id = stripe_id
        session.flush()
    elif taken != customer.customer_id:
        log.warning(
            "Stripe customer %s belongs to %s, not recorded on %s",
            stripe_id,
            taken,
            customer.customer_id,
        )


# -- applying ---------------------------------------------------------------------------------


APPLY, IGNORE, CONFLICT = "apply", "ignore", "conflict"


def decide(row: Subscription | None, sub: Obj) -> tuple[str, str]:
    """Whether the row takes the state of Stripe subscription `sub` (APPLY), leaves it alone
    (IGNORE), or `sub` is a second live subscription (CONFLICT); and why (see module doc)."""
    sub_id = sub.get("id")
    ended = sub.get("status") in statuses.STRIPE_ENDED
    if row is None or row.stripe_subscription_id is None:
        return APPLY, "first Stripe subscription of the customer"
    if row.stripe_subscription_id == sub_id:
        if ended and row.plan == Plan.TRIAL.value:
            return IGNORE, f"{sub_id} ended and the customer was returned to the trial tier"
        return APPLY, "current subscription"
    if ended:
        return IGNORE, f"{sub_id} has ended; the customer follows {row.stripe_subscription_id}"
    if row.status in statuses.ENDED or row.plan == Plan.TRIAL.value:
        return APPLY, f"new subscription replaces ended {row.stripe_subscription_id}"
    return CONFLICT, (
        f"billing conflict: customer already has live subscription "
        f"{row.stripe_subscription_id}; {sub_id} ({sub.get('status')}) recorded for an operator"
    )


def _wanted_state(sub: Obj, row: Subscription | None) -> dict[str, Any]:
    plan, price_id = subscription_plan(sub)
    same = row is not None and row.stripe_subscription_id == sub["id"]
    return {
        "stripe_subscription_id": sub["id"],
        "stripe_price_id": price_id,
        "plan": plan.value,
        "status": str(sub.get("status") or SubscriptionStatus.INCOMPLETE),
        "trial_ends_at": _ts(sub.get("trial_end")),
        "current_period_starts_at": period_start(sub),
        "current_period_ends_at": period_end(sub),
        "paid_through_at": paid_through(sub, row.paid_through_at if same and row else None),
        "collection_paused": bool(sub.get("pause_collection")),
        "cancel_at_period_end": entitlements.stripe_ends_with_period(sub),
        "canceled_at": _ts(sub.get("canceled_at")),
    }


def metered_since(
    row: Subscription | None, wanted: dict[str, Any], at: datetime
) -> datetime | None:
    """Since when the row, once `wanted` is applied, has its overage billed at its plan: kept while
    the same subscription stays metered on the same plan, `at` when it starts (a checkout, a
    trial that converts, a plan change, a subscription that pays again), None while not metered.

    `at` is when Stripe was read, so never before the change itself: the day the change fell in
    is not billed at the new plan (`core.billing.metering.days`), as part of it was on another.
    """
    if not overage_billed(wanted["plan"], wanted["status"], is_trial=False):
        return None
    if (
        row is not None
        and row.metered_since is not None
        and row.stripe_subscription_id == wanted["stripe_subscription_id"]
        and row.plan == wanted["plan"]
        and overage_billed(row.plan, row.status, is_trial=False)
    ):
        return row.metered_since
    return at


def differs(row: Subscription | None, sub: Obj) -> bool:
    """Whether applying `sub` would change the row (reconciliation's drift check)."""
    if decide(row, sub)[0] != APPLY:
        return False
    if row is None:
        return True
    return any(getattr(row, name) != value for name, value in _wanted_state(sub, row).items())


def apply_subscription(
    session: Session,
    customer: Customer,
    sub: Obj,
    *,
    reason: str,
    event_created: int | None = None,
    read_at: datetime | None = None,
) -> SyncOutcome:
    """Make the customer's row say what Stripe subscription `sub` (read at `read_at`) says, and
    reissue the license if what it says changed. The customer must be locked; the caller
    commits."""
    row = get_subscription(session, customer.customer_id)
    remember_stripe_customer(session, customer, sub.get("customer"))
    verdict, note = decide(row, sub)
    if verdict == CONFLICT:
        assert row is not None
        issues.record_conflict(session, customer.customer_id, sub, row.stripe_subscription_id)
        log.warning("customer %s: %s", customer.customer_id, note)
    if verdict != APPLY:
        if verdict == IGNORE and sub.get("status") in statuses.STRIPE_ENDED:
            issues.resolve_conflict(session, str(sub["id"]))  # it no longer double-bills
        log.info("not applying %s to %s: %s", sub.get("id"), customer.customer_id, note)
        return SyncOutcome(customer.customer_id, False, False, False, note)
    if (
        read_at is not None
        and row is not None
        and row.stripe_subscription_id == sub["id"]
        and row.stripe_read_at is not None
        and read_at < row.stripe_read_at
    ):
        note = f"{sub['id']} was read before the state last applied: left alone"
        return SyncOutcome(customer.customer_id, False, False, False, note)
    wanted = _wanted_state(sub, row)
    since = metered_since(row, wanted, read_at or utcnow())
    issues.resolve_conflict(session, str(sub["id"]))  # followed now: the other one ended
    if row is None:
        row = Subscription(customer_id=customer.customer_id, **wanted)
        session.add(row)
        changed = True
    else:
        changed = any(getattr(row, name) != value for name, value in wanted.items())
        for name, value in wanted.items():
            setattr(row, name, value)
    row.metered_since = since
    if event_created is not None:
        row.stripe_event_created = max(row.stripe_event_created or 0, int(event_created))
    if read_at is not None:
        row.stripe_read_at = read_at
    session.flush()
    license_row = reissue_license(session, customer.customer_id, reason=reason)
    return SyncOutcome(
        customer.customer_id,
        True,
        changed,
        license_row is not None,
        f"{wanted['plan']} {wanted['status']}" + (" (changed)" if changed else " (unchanged)"),
    )
