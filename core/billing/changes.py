"""Changing a live Stripe subscription: plan changes, cancellation, deactivation.

Each operation locks the customer row, calls Stripe, and applies Stripe's answer locally under
that lock (`core.billing.sync`), so the local row and the license change at once; the webhook
events that follow re-read the same state and change nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing import statuses
from core.billing.catalogue import price_for_plan, sellable_plan
from core.billing.gateway import StripeGateway, StripeNotConfiguredError
from core.billing.meters import overage_item_updates, overage_price_for_plan
from core.billing.repository import get_subscription
from core.billing.statuses import SubscriptionStatus
from core.billing.sync import apply_subscription, subscription_item
from core.errors import ConflictError, NotFoundError
from core.licensing.service import lock_customer, reissue_license
from core.plans import Plan
from core.settings import get_settings
from models import Customer, Subscription, utcnow

Obj = dict[str, Any]


# -- plan changes and cancellation ------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionChange:
    customer_id: str
    subscription_id: str
    previous_plan: str
    plan: str
    status: str
    cancel_at_period_end: bool
    current_period_ends_at: datetime | None
    canceled_at: datetime | None
    changed: bool
    license_reissued: bool
    notes: list[str] = field(default_factory=list)


def _locked_row_for(session: Session, subscription_id: str) -> tuple[Customer, Subscription]:
    """The customer (locked) and row of a Stripe subscription id, or of a customer id."""
    column = (
        Subscription.customer_id
        if subscription_id.startswith("cust_")
        else Subscription.stripe_subscription_id
    )
    customer_id = session.scalar(select(Subscription.customer_id).where(column == subscription_id))
    if customer_id is None:
        raise NotFoundError(f"no subscription {subscription_id!r}", field="subscriptionId")
    customer = lock_customer(session, customer_id)
    row = get_subscription(session, customer_id)
    if row is None or not row.stripe_subscription_id:
        raise ConflictError(
            f"{subscription_id} has no Stripe subscription; start one with create-checkout",
            field="subscriptionId",
        )
    return customer, row


def _change(
    session: Session, customer: Customer, previous_plan: str, sub: Obj, reason: str
) -> SubscriptionChange:
    outcome = apply_subscription(session, customer, sub, reason=reason)
    row = get_subscription(session, customer.customer_id)
    assert row is not None
    return SubscriptionChange(
        customer_id=customer.customer_id,
        subscription_id=str(sub["id"]),
        previous_plan=previous_plan,
        plan=row.plan,
        status=row.status,
        cancel_at_period_end=row.cancel_at_period_end,
        current_period_ends_at=row.current_period_ends_at,
        canceled_at=row.canceled_at,
        changed=outcome.changed,
        license_reissued=outcome.license_reissued,
        notes=[outcome.note],
    )


def change_plan(
    session: Session, gateway: StripeGateway, subscription_id: str, plan: object
) -> SubscriptionChange:
    """Move a live Stripe subscription to another plan's price, prorated; the caller commits.
    Asking for the plan it already has changes nothing."""
    spec = sellable_plan(plan)
    customer, row = _locked_row_for(session, subscription_id)
    previous_plan = row.plan
    stripe_id = str(row.stripe_subscription_id)
    sub = gateway.retrieve_subscription(stripe_id)
    if sub.get("status") in statuses.STRIPE_ENDED:
        raise ConflictError(
            f"subscription {stripe_id} is {sub.get('status')}; start a new one with "
            "create-checkout",
            field="subscriptionId",
        )
    price_id = price_for_plan(gateway, spec)
    item = subscription_item(sub)
    if item is None:
        raise ConflictError(f"subscription {stripe_id} has no item to change")
    # The overage item follows the plan: its price swapped, added, or removed (enterprise).
    overage = overage_item_updates(sub, overage_price_for_plan(gateway, spec.plan))
    if (item.get("price") or {}).get("id") != price_id or overage:
        sub = gateway.update_subscription(
            stripe_id,
            {
                "items": [{"id": item["id"], "price": price_id}, *overage],
                "proration_behavior": "create_prorations",
                # A plan change is also a wish to keep the subscription.
                "cancel_at_period_end": False,
                "metadata": {"plan": spec.plan.value},
            },
        )
    return _change(session, customer, previous_plan, sub, f"plan changed to {spec.plan.value}")


def cancel_subscription(
    session: Session, gateway: StripeGateway, subscription_id: str, *, immediately: bool = False
) -> SubscriptionChange:
    """Cancel at the end of the paid period (default) or now; the caller commits.
    Cancelling a canceled subscription changes nothing."""
    customer, row = _locked_row_for(session, subscription_id)
    previous_plan = row.plan
    stripe_id = str(row.stripe_subscription_id)
    sub = gateway.retrieve_subscription(stripe_id)
    if sub.get("status") not in statuses.STRIPE_ENDED:
        if immediately:
            sub = gateway.cancel_subscription(stripe_id)
        elif not sub.get("cancel_at_period_end"):
            sub = gateway.update_subscription(stripe_id, {"cancel_at_period_end": True})
    reason = "canceled" if immediately else "set to cancel at period end"
    return _change(session, customer, previous_plan, sub, reason)


# -- deactivation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deactivation:
    customer_id: str
    subscription_id: str | None
    previous_plan: str
    plan: str
    status: str
    canceled_at: datetime
    stripe_canceled: bool
    license_reissued: bool


def deactivate_customer(
    session: Session, gateway: StripeGateway | None, customer_id: str
) -> Deactivation:
    """Cancel the customer's Stripe subscription now and return them to the trial tier.

    The trial tier's status is `trialing` while the customer is within TRIAL_DAYS of signing up
    and `expired` after (a trial is given once). The row keeps the canceled subscription's id so
    that subscription's late events are recognised and cannot bring the paid plan back.
    Running it again changes nothing. `gateway` may be None when there is nothing to cancel.
    """
    customer = lock_customer(session, customer_id)
    row = get_subscription(session, customer_id)
    previous_plan = row.plan if row else Plan.TRIAL.value
    stripe_id = row.stripe_subscription_id if row else None
    now = utcnow()
    stripe_canceled = False
    canceled_at = row.canceled_at if row and row.canceled_at else now
    if row is not None and stripe_id and row.plan != Plan.TRIAL.value:
        if gateway is None:
            raise StripeNotConfiguredError(
                "Stripe is not configured: set STRIPE_SECRET_KEY", field="STRIPE_SECRET_KEY"
            )
        sub = gateway.retrieve_subscription(stripe_id)
        if sub.get("status") not in statuses.STRIPE_ENDED:
            sub = gateway.cancel_subscription(stripe_id)
            stripe_canceled = True
        canceled_at = now
    if row is not None and row.plan == Plan.TRIAL.value and row.trial_ends_at is not None:
        trial_end = row.trial_ends_at
    else:
        trial_end = customer.created_at + timedelta(days=get_settings().trial_days)
    status = SubscriptionStatus.TRIALING if now < trial_end else SubscriptionStatus.EXPIRED
    if row is None:
        row = Subscription(customer_id=customer_id, plan=Plan.TRIAL.value, status=status)
        session.add(row)
    if row.plan != Plan.TRIAL.value or row.stripe_price_id is not None:
        row.canceled_at = canceled_at
    row.plan = Plan.TRIAL.value
    row.status = status
    row.trial_ends_at = trial_end
    row.stripe_price_id = None
    row.current_period_ends_at = None
    row.cancel_at_period_end = False
    session.flush()
    license_row = reissue_license(session, customer_id, reason="deactivated: back to trial tier")
    return Deactivation(
        customer_id=customer_id,
        subscription_id=stripe_id,
        previous_plan=previous_plan,
        plan=row.plan,
        status=row.status,
        canceled_at=row.canceled_at or canceled_at,
        stripe_canceled=stripe_canceled,
        license_reissued=license_row is not None,
    )
