"""Changing a live Stripe subscription: plan changes, cancellation, deactivation, the portal.

Money follows payment (docs/stripe.md): an upgrade is invoiced at once and granted when paid
(`always_invoice` + `pending_if_incomplete`: Stripe keeps the old plan until the invoice is
paid); a downgrade credits the next invoice (`create_prorations`); cancellation and deactivation
end access at the end of the paid period unless asked to end it now, and then a final invoice
settles pending prorations and credits unused time (`invoice_now`, `prorate`) if the period was
paid, else unpaid invoices are voided (`end_now`). Every answer says when access ends.

Each operation reads the customer's row, calls Stripe, and only then locks the customer and
applies Stripe's answer (`core.billing.sync`): no Stripe call waits under the customer lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.billing import entitlements, plan_items, promotions, statuses
from core.billing.cancel_now import end_now
from core.billing.catalogue import find_promotion, price_for_plan, sellable_plan
from core.billing.gateway import StripeGateway, StripeNotConfiguredError
from core.billing.metering.meters import overage_price_for_plan
from core.billing.portal import configuration_id
from core.billing.repository import get_subscription
from core.billing.statuses import SubscriptionStatus
from core.billing.stripe_errors import refused_as
from core.billing.sync import apply_subscription, subscription_item
from core.customers.lock import get_for_update
from core.customers.service import get_customer
from core.db import Transaction, record_from
from core.errors import ConflictError, NotFoundError
from core.licensing.service import reissue_license
from core.plans import Plan
from core.settings import get_settings
from models import Subscription, utcnow

Obj = dict[str, Any]

# Smallest first: moving right is an upgrade (charged now), left a downgrade (credited later).
_PLAN_ORDER = [Plan.TRIAL, Plan.STARTER, Plan.PROFESSIONAL, Plan.ENTERPRISE]


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
    # When access to the paid plan ends; None while it renews.
    access_ends_at: datetime | None
    # An upgrade whose invoice is not paid yet: the bigger plan is granted once it is.
    pending_payment: bool
    changed: bool
    license_reissued: bool
    notes: list[str] = field(default_factory=list)


def _row_for(session: Session, subscription_id: str) -> Subscription:
    """The row of a Stripe subscription id, or of a customer id (read, not locked)."""
    column = (
        Subscription.customer_id
        if subscription_id.startswith("cust_")
        else Subscription.stripe_subscription_id
    )
    customer_id = session.scalar(select(Subscription.customer_id).where(column == subscription_id))
    row = get_subscription(session, customer_id) if customer_id else None
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id!r}", field="subscriptionId")
    if not row.stripe_subscription_id:
        raise ConflictError(
            f"{subscription_id} has no Stripe subscription; start one with create-checkout",
            field="subscriptionId",
        )
    return row


def audited_state(row: Subscription | None) -> dict[str, Any]:
    """What the audit log keeps of a subscription before and after an operator's change."""
    if row is None:
        return {}
    return {
        "plan": row.plan,
        "status": row.status,
        "cancel_at_period_end": row.cancel_at_period_end,
        "current_period_ends_at": row.current_period_ends_at,
    }


def _apply(
    session: Session,
    customer_id: str,
    before: dict[str, Any],
    sub: Obj,
    reason: str,
    read_at: datetime,
    action: str,
) -> SubscriptionChange:
    customer = get_for_update(session, customer_id)
    outcome = apply_subscription(session, customer, sub, reason=reason, read_at=read_at)
    row = get_subscription(session, customer_id)
    assert row is not None
    audit.record(session, action, customer_id=customer_id, before=before, after=audited_state(row))
    previous_plan = str(before["plan"])
    # Plan, status and dates as the row now says them.
    return record_from(
        SubscriptionChange,
        row,
        subscription_id=str(sub["id"]),
        previous_plan=previous_plan,
        access_ends_at=entitlements.access_ends_at(row),
        pending_payment=bool(sub.get("pending_update")),
        changed=outcome.changed,
        license_reissued=outcome.license_reissued,
        notes=[outcome.note],
    )


def _renews(sub: Obj) -> bool:
    """Whether the subscription renews, now or once its pending update is paid (one that
    carries `cancel_at_period_end=false`)."""
    pending = sub.get("pending_update") or {}
    return (
        not entitlements.stripe_ends_with_period(sub)
        or pending.get("cancel_at_period_end") is False
    )


def _is_upgrade(previous: str, wanted: Plan) -> bool:
    previous_plan = Plan(previous) if previous in {p.value for p in Plan} else Plan.TRIAL
    return _PLAN_ORDER.index(wanted) > _PLAN_ORDER.index(previous_plan)


def change_plan(
    session: Session,
    gateway: StripeGateway,
    subscription_id: str,
    plan: object,
    *,
    transaction: Transaction,
    promo_code: str | None = None,
) -> SubscriptionChange:
    """Move a live Stripe subscription to another plan's price; the caller commits.

    An upgrade is invoiced now and granted when paid; a downgrade is credited on the next
    invoice. Asking for the plan it already has (and no promotion code) changes nothing.
    `transaction` opens the transactions the overage item's move commits on its own
    (`core.billing.metering.moves`): the door passes `session_scope`.
    """
    spec = sellable_plan(plan)
    row = _row_for(session, subscription_id)
    customer_id, previous_plan, before = row.customer_id, row.plan, audited_state(row)
    stripe_id = str(row.stripe_subscription_id)
    read_at = utcnow()
    sub = gateway.retrieve_subscription(stripe_id)
    if sub.get("status") in statuses.STRIPE_ENDED:
        raise ConflictError(
            f"subscription {stripe_id} is {sub.get('status')}; start a new one with "
            "create-checkout",
            field="subscriptionId",
        )
    price_id = price_for_plan(gateway, spec)
    promotion = find_promotion(gateway, promo_code)
    item = subscription_item(sub)
    if item is None:
        raise ConflictError(f"subscription {stripe_id} has no item to change")
    if sub.get("pending_update"):
        # An upgrade waits for its invoice: asking for it again (a retry) sends nothing, so
        # it is never invoiced twice; another change waits until it is paid or expires.
        if price_id not in plan_items.pending_prices(sub):
            raise ConflictError(
                f"subscription {stripe_id} has an upgrade waiting for its invoice to be paid; "
                "change the plan once it is paid or has expired (within 23 hours)",
                field="plan",
            )
        return _apply(
            session, customer_id, before, sub, "upgrade waiting for payment", read_at,
            "subscription.change_plan",
        )  # fmt: skip
    overage_price_id = overage_price_for_plan(gateway, spec.plan)
    # A plan change is also a wish to keep the subscription; like the promotion code, it takes
    # effect with the change: for an upgrade only once its invoice is paid (inside the pending
    # update), so an upgrade never paid neither renews a canceled subscription nor discounts
    # the old plan.
    upgrade = _is_upgrade(previous_plan, spec.plan)
    keep = plan_items.keep_params(sub, upgrade)
    with refused_as(discounts="promoCode", items="plan"):
        if upgrade:
            wishes = {**keep, **promotions.with_upgrade(promotion)}
            sub = plan_items.upgrade(
                transaction, gateway, sub, previous_plan, price_id, overage_price_id, wishes
            )
        else:
            wishes = {**keep, **promotions.discount_now(sub, promotion)}
            sub = plan_items.downgrade(
                transaction, gateway, sub, price_id, overage_price_id, wishes
            )
    sub = promotions.apply_waiting(transaction, gateway, sub, customer_id)
    return _apply(
        session,
        customer_id,
        before,
        sub,
        f"plan changed to {spec.plan.value}",
        read_at,
        "subscription.change_plan",
    )


def cancel_subscription(
    session: Session,
    gateway: StripeGateway,
    subscription_id: str,
    *,
    transaction: Transaction,
    immediately: bool = False,
) -> SubscriptionChange:
    """Cancel at the end of the paid period (default), or now with a final invoice that settles
    pending prorations and credits unused time; the caller commits. Idempotent."""
    row = _row_for(session, subscription_id)
    customer_id, before = row.customer_id, audited_state(row)
    stripe_id = str(row.stripe_subscription_id)
    read_at = utcnow()
    sub = gateway.retrieve_subscription(stripe_id)
    if immediately:
        sub = end_now(transaction, gateway, sub, customer_id, audit.actor_of(session))
    elif sub.get("status") not in statuses.STRIPE_ENDED and _renews(sub):
        # Also when only a pending upgrade would un-cancel it: Stripe then drops that upgrade.
        sub = gateway.update_subscription(stripe_id, {"cancel_at_period_end": True})
    reason = "canceled" if immediately else "set to cancel at period end"
    action = "subscription.cancel_now" if immediately else "subscription.cancel_at_period_end"
    return _apply(session, customer_id, before, sub, reason, read_at, action)


# -- deactivation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deactivation:
    customer_id: str
    subscription_id: str | None
    previous_plan: str
    plan: str
    status: str
    canceled_at: datetime | None
    # When the paid plan's access ends (None: there was no paid access to end).
    access_ends_at: datetime | None
    # The paid plan runs to the end of its paid period, then the subscription ends.
    at_period_end: bool
    stripe_canceled: bool
    license_reissued: bool


def deactivate_customer(
    session: Session,
    gateway: StripeGateway | None,
    customer_id: str,
    *,
    transaction: Transaction,
    immediately: bool = False,
) -> Deactivation:
    """Stop the customer's paid subscription: at the end of the period they paid for (default;
    a paying customer is never cut off at once), or now (`immediately`: `end_now`, crediting
    unused time of a paid period only), returning them to the trial tier.

    The trial tier's status is `trialing` while the customer is within TRIAL_DAYS of signing up
    and `expired` after (a trial is given once). The row keeps the canceled subscription's id so
    its late events are recognised and cannot bring the paid plan back. Running it again changes
    nothing. `gateway` may be None when there is nothing to cancel.
    """
    get_customer(session, customer_id)
    row = get_subscription(session, customer_id)
    stripe_id = row.stripe_subscription_id if row else None
    if row is not None and stripe_id and row.plan != Plan.TRIAL.value:
        if gateway is None:
            raise StripeNotConfiguredError(
                "Stripe is not configured: set STRIPE_SECRET_KEY", field="STRIPE_SECRET_KEY"
            )
        live = row.status not in statuses.ENDED
        if not immediately and live:
            change = cancel_subscription(session, gateway, stripe_id, transaction=transaction)
            return record_from(
                Deactivation,
                change,
                subscription_id=stripe_id,
                at_period_end=change.status not in statuses.ENDED,
                stripe_canceled=False,
            )
        sub = gateway.retrieve_subscription(stripe_id)
        # Ours also when a first try canceled it and failed after (a void): the row still
        # holds the paid plan, and Stripe says the cancellation was requested.
        requested = (sub.get("cancellation_details") or {}).get("reason")
        stripe_canceled = (
            sub.get("status") not in statuses.STRIPE_ENDED or requested == "cancellation_requested"
        )
        end_now(transaction, gateway, sub, customer_id, audit.actor_of(session))
        return _back_to_trial(session, customer_id, stripe_canceled=stripe_canceled)
    return _back_to_trial(session, customer_id, stripe_canceled=False)


def _back_to_trial(session: Session, customer_id: str, *, stripe_canceled: bool) -> Deactivation:
    customer = get_for_update(session, customer_id)
    row = get_subscription(session, customer_id)
    previous_plan = row.plan if row else Plan.TRIAL.value
    before = audited_state(row)
    now = utcnow()
    if row is not None and row.plan == Plan.TRIAL.value and row.trial_ends_at is not None:
        trial_end = row.trial_ends_at
    else:
        trial_end = customer.created_at + timedelta(days=get_settings().trial_days)
    status = SubscriptionStatus.TRIALING if now < trial_end else SubscriptionStatus.EXPIRED
    if row is None:
        row = Subscription(customer_id=customer_id, plan=Plan.TRIAL.value, status=status)
        session.add(row)
    ended_paid_plan = row.plan != Plan.TRIAL.value or row.stripe_price_id is not None
    if ended_paid_plan:
        row.canceled_at = now
    row.plan = Plan.TRIAL.value
    row.status = status
    row.trial_ends_at = trial_end
    row.stripe_price_id = None
    row.current_period_starts_at = None
    row.current_period_ends_at = None
    row.paid_through_at = None
    row.metered_since = None
    row.cancel_at_period_end = False
    session.flush()
    license_row = reissue_license(session, customer_id, reason="deactivated: back to trial tier")
    audit.record(
        session,
        "customer.deactivate",
        customer_id=customer_id,
        before=before,
        after=audited_state(row),
    )
    return record_from(
        Deactivation,
        row,
        subscription_id=row.stripe_subscription_id,
        previous_plan=previous_plan,
        access_ends_at=now if ended_paid_plan else None,
        at_period_end=False,
        stripe_canceled=stripe_canceled,
        license_reissued=license_row is not None,
    )


# -- the customer portal ------------------------------------------------------------------------


def portal_url(session: Session, gateway: StripeGateway, customer_id: str, return_url: str) -> str:
    """A Stripe customer portal session (cards, invoices) for the customer: its URL.
    409 when the customer has no Stripe customer yet (they never started a checkout)."""
    customer = get_customer(session, customer_id)
    if not customer.stripe_customer_id:
        raise ConflictError(
            f"customer {customer_id} has no Stripe customer yet; start a checkout first",
            field="customerId",
        )
    with refused_as(return_url="returnUrl"):
        created = gateway.create_portal_session(
            customer.stripe_customer_id, return_url, configuration=configuration_id(gateway)
        )
    return str(created["url"])
