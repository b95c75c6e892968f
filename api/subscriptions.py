"""Subscriptions: starting a trial (checkout, upgrade and cancel live here too)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from api.deps import AdminKey, DbSession
from api.schemas import ID_PATTERN, CamelModel, SubscriptionIdPath, error_responses
from core.billing import changes
from core.billing import checkout as checkout_service
from core.billing import trials as subscription_service
from core.billing.gateway import get_gateway
from core.licensing import service as license_service

router = APIRouter(
    prefix="/api/subscriptions",
    tags=["subscriptions"],
    responses=error_responses(401, 404, 409, 413, 422, 429, 503),
)


class CreateTrialIn(CamelModel):
    customer_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    plan: str = Field(min_length=1, max_length=50)


class TrialOut(CamelModel):
    customer_id: str
    plan: str
    status: str
    trial_ends_at: datetime | None
    license: str
    license_expires_at: datetime


@router.post("/create-trial", summary="Start a 14-day trial of a plan (admin)")
def create_trial(body: CreateTrialIn, _: AdminKey, session: DbSession) -> TrialOut:
    result = subscription_service.start_trial(session, body.customer_id, body.plan)
    # One RSA signature: done here so the answer carries the license that matches the trial.
    license_row = license_service.ensure_license(session, body.customer_id)
    subscription = result.subscription
    return TrialOut(
        customer_id=subscription.customer_id,
        plan=subscription.plan,
        status=subscription.status,
        trial_ends_at=subscription.trial_ends_at,
        license=license_row.token,
        license_expires_at=license_row.expires_at,
    )


# -- Stripe: checkout, plan change, cancellation ------------------------------------------------


class CreateCheckoutIn(CamelModel):
    customer_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    plan: str = Field(min_length=1, max_length=50)
    success_url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    cancel_url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    # Applied as the session's discount; without it the customer may enter one on the page.
    promo_code: str | None = Field(default=None, min_length=1, max_length=100)


class CheckoutOut(CamelModel):
    session_id: str
    url: str


class UpgradeIn(CamelModel):
    plan: str = Field(min_length=1, max_length=50)


class CancelIn(CamelModel):
    immediately: bool = False


class SubscriptionChangeOut(CamelModel):
    customer_id: str
    subscription_id: str
    previous_plan: str
    plan: str
    status: str
    cancel_at_period_end: bool
    current_period_ends_at: datetime | None
    canceled_at: datetime | None
    license_reissued: bool


@router.post("/create-checkout", summary="Create a Stripe Checkout Session (admin)")
def create_checkout(body: CreateCheckoutIn, _: AdminKey, session: DbSession) -> CheckoutOut:
    result = checkout_service.create_checkout(
        session,
        get_gateway(),
        customer_id=body.customer_id,
        plan=body.plan,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        promo_code=body.promo_code,
    )
    return CheckoutOut(session_id=result.session_id, url=result.url)


@router.post(
    "/{subscription_id}/upgrade",
    summary="Change a Stripe subscription's plan, prorated (admin; Stripe or customer id)",
)
def upgrade(
    subscription_id: SubscriptionIdPath, body: UpgradeIn, _: AdminKey, session: DbSession
) -> SubscriptionChangeOut:
    change = changes.change_plan(session, get_gateway(), subscription_id, body.plan)
    return SubscriptionChangeOut.model_validate(change)


@router.post(
    "/{subscription_id}/cancel",
    summary="Cancel a Stripe subscription at period end, or now with immediately (admin)",
)
def cancel(
    subscription_id: SubscriptionIdPath,
    _: AdminKey,
    session: DbSession,
    body: CancelIn | None = None,
) -> SubscriptionChangeOut:
    change = changes.cancel_subscription(
        session, get_gateway(), subscription_id, immediately=bool(body and body.immediately)
    )
    return SubscriptionChangeOut.model_validate(change)
