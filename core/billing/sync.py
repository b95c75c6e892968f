"""Bringing a customer's local subscription in line with a Stripe subscription.

Callers (event handlers, upgrade/cancel) lock the customer row first (`lock_customer`), then read
the subscription from Stripe, then `apply_subscription`. Reading Stripe's current state under the
lock is what makes order irrelevant: whatever order events arrive in, each one re-reads the
authoritative state, and two workers never apply their reads in the opposite order of taking them.

A customer has one subscription row, so a snapshot of a *different* Stripe subscription than the
one the row follows needs a rule (`decide`):

- the row follows no Stripe subscription yet (trial): any subscription of the customer is applied;
- the row follows an ended subscription (or was returned to the trial tier): a live one is applied;
- an ended subscription never replaces the one the row follows, and a second live one never
  replaces a live one (it is reported instead, for an operator to sort out the double billing);
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

from core.billing import statuses
from core.billing.catalogue import plan_for_price as plan_for_price  # re-exported
from core.billing.meters import flat_item
from core.billing.repository import customer_of_subscription, get_subscription
from core.billing.statuses import SubscriptionStatus
from core.licensing.service import reissue_license
from core.plans import Plan
from models import Customer, Subscription

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
    # Newer API versions keep the period on each item; older ones on the subscription.
    item = subscription_item(sub) or {}
    return _ts(item.get("current_period_end") or sub.get("current_period_end"))


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


def decide(row: Subscription | None, sub: Obj) -> tuple[bool, str]:
    """Whether the row should take the state of Stripe subscription `sub` (see module doc)."""
    sub_id = sub.get("id")
    ended = sub.get("status") in statuses.STRIPE_ENDED
    if row is None or row.stripe_subscription_id is None:
        return True, "first Stripe subscription of the customer"
    if row.stripe_subscription_id == sub_id:
        if ended and row.plan == Plan.TRIAL.value:
            return False, f"{sub_id} ended and the customer was returned to the trial tier"
        return True, "current subscription"
    if ended:
        return False, f"{sub_id} has ended; the customer follows {row.stripe_subscription_id}"
    if row.status in statuses.ENDED or row.plan == Plan.TRIAL.value:
        return True, f"new subscription replaces ended {row.stripe_subscription_id}"
    return False, (
        f"customer already has live subscription {row.stripe_subscription_id}; "
        f"{sub_id} ({sub.get('status')}) left alone: check for double billing"
    )


def _wanted_state(sub: Obj) -> dict[str, Any]:
    plan, price_id = subscription_plan(sub)
    return {
        "stripe_subscription_id": sub["id"],
        "stripe_price_id": price_id,
        "plan": plan.value,
        "status": str(sub.get("status") or SubscriptionStatus.INCOMPLETE),
        "trial_ends_at": _ts(sub.get("trial_end")),
        "current_period_ends_at": period_end(sub),
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end") or sub.get("cancel_at")),
        "canceled_at": _ts(sub.get("canceled_at")),
    }


def apply_subscription(
    session: Session,
    customer: Customer,
    sub: Obj,
    *,
    reason: str,
    event_created: int | None = None,
) -> SyncOutcome:
    """Make the customer's row say what Stripe subscription `sub` says, and reissue the
    license if what it says changed. The customer must be locked; the caller commits."""
    row = get_subscription(session, customer.customer_id)
    remember_stripe_customer(session, customer, sub.get("customer"))
    apply, note = decide(row, sub)
    if not apply:
        log.info("not applying %s to %s: %s", sub.get("id"), customer.customer_id, note)
        return SyncOutcome(customer.customer_id, False, False, False, note)
    wanted = _wanted_state(sub)
    if row is None:
        row = Subscription(customer_id=customer.customer_id, **wanted)
        session.add(row)
        changed = True
    else:
        changed = any(getattr(row, name) != value for name, value in wanted.items())
        for name, value in wanted.items():
            setattr(row, name, value)
    if event_created is not None:
        row.stripe_event_created = max(row.stripe_event_created or 0, int(event_created))
    session.flush()
    license_row = reissue_license(session, customer.customer_id, reason=reason)
    return SyncOutcome(
        customer.customer_id,
        True,
        changed,
        license_row is not None,
        f"{wanted['plan']} {wanted['status']}" + (" (changed)" if changed else " (unchanged)"),
    )
