"""Subscriptions: trials, Stripe checkout, plan changes, cancellation, the customer portal and
the billing issues an operator must look at."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from api.deps import AdminKey, DbSession
from api.schemas import ID_PATTERN, CamelModel, SubscriptionIdPath, error_responses, wire_model
from core.billing import changes, checkout, issues, trials
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.licensing.service import ensure_license

router = APIRouter(
    prefix="/api/subscriptions",
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
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
    result = trials.start_trial(session, body.customer_id, body.plan)
    # One RSA signature: done here so the answer carries the license that matches the trial.
    license_row = ensure_license(session, body.customer_id)
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
    # Applied to the subscription before the plan changes (so the upgrade invoice is discounted).
    promo_code: str | None = Field(default=None, min_length=1, max_length=100)


class CancelIn(CamelModel):
    immediately: bool = False


# The service's result on the wire, less what is for the CLI (`changed`, `notes`).
SubscriptionChangeOut = wire_model(
    changes.SubscriptionChange, "SubscriptionChangeOut", exclude=frozenset({"changed", "notes"})
)


class PortalIn(CamelModel):
    customer_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    return_url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")


class PortalOut(CamelModel):
    url: str


class BillingIssueOut(CamelModel):
    kind: str
    customer_id: str | None
    stripe_object_id: str
    stripe_status: str
    amount_cents: int | None
    detail: str
    created_at: datetime


class BillingIssuesOut(CamelModel):
    issues: list[BillingIssueOut]


@router.post("/create-checkout", summary="Create a Stripe Checkout Session (admin)")
def create_checkout(body: CreateCheckoutIn, _: AdminKey, session: DbSession) -> CheckoutOut:
    result = checkout.create_checkout(
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
    summary="Change the plan: upgrades charged now and granted when paid, downgrades credited "
    "(admin; Stripe subscription id, or customer id: a checkout if nothing bills them yet)",
    response_model=SubscriptionChangeOut | CheckoutOut,
)
def upgrade(
    subscription_id: SubscriptionIdPath, body: UpgradeIn, _: AdminKey, session: DbSession
) -> CamelModel:
    if subscription_id.startswith("cust_"):
        result = checkout.subscribe(
            session,
            get_gateway(),
            transaction=session_scope,
            customer_id=subscription_id,
            plan=body.plan,
            promo_code=body.promo_code,
        )
        if isinstance(result, checkout.CheckoutResult):
            return CheckoutOut(session_id=result.session_id, url=result.url)
        return SubscriptionChangeOut.model_validate(result)
    change = changes.change_plan(
        session,
        get_gateway(),
        subscription_id,
        body.plan,
        transaction=session_scope,
        promo_code=body.promo_code,
    )
    return SubscriptionChangeOut.model_validate(change)


@router.post(
    "/{subscription_id}/cancel",
    summary="Cancel at the end of the paid period, or now with immediately (a final invoice "
    "settles prorations and credits unused time) (admin)",
    response_model=SubscriptionChangeOut,
)
def cancel(
    subscription_id: SubscriptionIdPath,
    _: AdminKey,
    session: DbSession,
    body: CancelIn | None = None,
) -> CamelModel:
    change = changes.cancel_subscription(
        session,
        get_gateway(),
        subscription_id,
        transaction=session_scope,
        immediately=bool(body and body.immediately),
    )
    return SubscriptionChangeOut.model_validate(change)


@router.post("/portal", summary="A Stripe customer portal link for cards and invoices (admin)")
def portal(body: PortalIn, _: AdminKey, session: DbSession) -> PortalOut:
    url = changes.portal_url(session, get_gateway(), body.customer_id, body.return_url)
    return PortalOut(url=url)


@router.get("/issues", summary="Open billing issues: double subscriptions, disputes (admin)")
def billing_issues(
    _: AdminKey,
    session: DbSession,
    customer_id: Annotated[
        str | None,
        Query(alias="customerId", min_length=1, max_length=64, pattern=ID_PATTERN),
    ] = None,
) -> BillingIssuesOut:
    found = issues.open_issues(session, customer_id)
    return BillingIssuesOut(issues=[BillingIssueOut.model_validate(issue) for issue in found])
