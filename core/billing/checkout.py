"""Selling a plan: a Stripe Checkout Session for a customer who has no live subscription, and
`subscribe`, the one decision between a checkout and a plan change (API and CLI both call it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.billing import statuses
from core.billing.catalogue import find_promotion, price_for_plan, sellable_plan
from core.billing.changes import SubscriptionChange, change_plan
from core.billing.gateway import StripeGateway
from core.billing.metering.meters import line_items, overage_price_for_plan
from core.billing.repository import get_subscription
from core.billing.stripe_errors import StripeRequestError, refused_as
from core.customers.lock import get_for_update
from core.customers.service import get_customer
from core.db import Transaction, advisory_lock
from core.errors import ConflictError
from core.plans import Plan
from core.settings import get_settings
from models import Customer, Subscription

Obj = dict[str, Any]


def bills(row: Subscription | None) -> bool:
    """Whether the row follows a Stripe subscription that may still bill the customer.

    A row back on the free trial tier (deactivated) may keep the id of the Stripe subscription it
    left, but that subscription bills nobody any more: the customer may check out again.
    """
    return bool(
        row
        and row.stripe_subscription_id
        and row.plan != Plan.TRIAL.value
        and row.status in statuses.BILLING
    )


@dataclass(frozen=True)
class CheckoutResult:
    session_id: str
    url: str
    customer_id: str
    plan: str
    stripe_customer_id: str
    promotion_code: str | None


def _stripe_customer(
    gateway: StripeGateway, customer: Customer, *, replacing: str | None = None
) -> str:
    """The customer's Stripe customer id, creating it on first use. Nothing is written here: the
    id is stored once every Stripe call of the checkout is done (`_remember`), so no Stripe call
    waits while the customer row is locked by that write. A rollback loses nothing: the create
    call's idempotency key (our customer id and the parameters) gets the same Stripe customer
    back next time. `replacing` names a Stripe customer deleted in Stripe: a new one is made.
    """
    if customer.stripe_customer_id and not replacing:
        return customer.stripe_customer_id
    created = gateway.create_customer(
        customer_id=customer.customer_id,
        email=customer.email,
        name=customer.company_name or customer.name,
        replacing=replacing,
    )
    return str(created["id"])


def _remember(session: Session, customer_id: str, stripe_customer_id: str) -> None:
    """Store the Stripe customer id the checkout used (locks the row: after the Stripe calls)."""
    customer = get_for_update(session, customer_id)
    if customer.stripe_customer_id != stripe_customer_id:
        customer.stripe_customer_id = stripe_customer_id
        session.flush()


def create_checkout(
    session: Session,
    gateway: StripeGateway,
    *,
    customer_id: str,
    plan: object,
    success_url: str,
    cancel_url: str,
    promo_code: str | None = None,
) -> CheckoutResult:
    """A subscription-mode Checkout Session for the customer and plan.

    One payable checkout per customer: the customer's earlier open sessions are expired first,
    so two paid sessions can never make two subscriptions. Checkouts of one customer run one at a
    time (until the caller's transaction ends), so a concurrent one sees this one's session and
    expires it rather than both leaving a payable session.
    """
    # A concurrent checkout of the customer waits out this one's Stripe calls (one request's
    # timeout), then expires the session this one made.
    advisory_lock(
        session, f"checkout:{customer_id}", wait_seconds=get_settings().stripe_timeout_seconds
    )
    spec = sellable_plan(plan)
    customer = get_customer(session, customer_id)
    row = get_subscription(session, customer_id)
    if row is not None and bills(row):
        raise ConflictError(
            f"customer {customer_id} already has subscription {row.stripe_subscription_id} "
            f"({row.plan}, {row.status}); change its plan with "
            f"POST /api/subscriptions/{row.stripe_subscription_id}/upgrade",
            field="customerId",
        )
    price_id = price_for_plan(gateway, spec)
    promotion = find_promotion(gateway, promo_code)
    known_to_stripe = customer.stripe_customer_id is not None
    stripe_customer_id = _stripe_customer(gateway, customer)
    if known_to_stripe:  # a Stripe customer made just now has no earlier sessions
        gateway.expire_open_checkout_sessions(stripe_customer_id)
    metadata = {"customerId": customer_id, "plan": spec.plan.value}
    params: Obj = {
        "mode": "subscription",
        "customer": stripe_customer_id,
        "client_reference_id": customer_id,
        # The flat price and, on metered plans, the device overage price (no quantity).
        "line_items": line_items(price_id, overage_price_for_plan(gateway, spec.plan)),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
        # On the subscription too, so every later subscription and invoice event names its
        # customer even if the Stripe customer was made elsewhere.
        "subscription_data": {"metadata": metadata},
    }
    if promotion is not None:
        params["discounts"] = [{"promotion_code": promotion["id"]}]
    else:
        params["allow_promotion_codes"] = True
    with refused_as(discounts="promoCode", line_items="plan"):
        try:
            created = gateway.create_checkout_session(params)
        except StripeRequestError as exc:
            if exc.param != "customer":
                raise
            # The Stripe customer was deleted in Stripe (its event may not be handled yet, or
            # the create call's idempotency key brought the deleted one back): replace it once.
            stripe_customer_id = _stripe_customer(gateway, customer, replacing=stripe_customer_id)
            params["customer"] = stripe_customer_id
            created = gateway.create_checkout_session(params)
    if customer.stripe_customer_id != stripe_customer_id:
        _remember(session, customer_id, stripe_customer_id)
    return CheckoutResult(
        session_id=str(created["id"]),
        url=str(created.get("url") or ""),
        customer_id=customer_id,
        plan=spec.plan.value,
        stripe_customer_id=stripe_customer_id,
        promotion_code=promotion["code"] if promotion else None,
    )


def subscribe(
    session: Session,
    gateway: StripeGateway,
    *,
    customer_id: str,
    plan: object,
    transaction: Transaction,
    success_url: str | None = None,
    cancel_url: str | None = None,
    promo_code: str | None = None,
) -> CheckoutResult | SubscriptionChange:
    """Put the customer on a paid plan: a checkout when nothing bills them yet, else a change of
    their live subscription's plan (a second checkout would bill them twice). The API's
    `POST /api/subscriptions/{customerId}/upgrade` and `billing customer upgrade` both call it."""
    sellable_plan(plan)
    get_customer(session, customer_id)
    if bills(get_subscription(session, customer_id)):
        return change_plan(
            session, gateway, customer_id, plan, transaction=transaction, promo_code=promo_code
        )
    base = get_settings().public_base_url.rstrip("/")
    return create_checkout(
        session,
        gateway,
        customer_id=customer_id,
        plan=plan,
        success_url=success_url or f"{base}/checkout/success",
        cancel_url=cancel_url or f"{base}/checkout/cancel",
        promo_code=promo_code,
    )
