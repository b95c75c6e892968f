from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, status
from pydantic import Field

from api.deps import AdminKey, DbSession
from api.schemas import CamelModel, CustomerIdPath, Page, error_responses
from core.customers import service
from models import Customer, License, Subscription

router = APIRouter(
    prefix="/api/customers",
    tags=["customers"],
    responses=error_responses(401, 422, 429, 503),
)


class CustomerOut(CamelModel):
    customer_id: str
    email: str
    name: str | None
    company_name: str | None
    stripe_customer_id: str | None
    created_at: datetime


class SubscriptionOut(CamelModel):
    plan: str
    status: str
    trial_ends_at: datetime | None
    current_period_ends_at: datetime | None
    stripe_subscription_id: str | None
    cancel_at_period_end: bool


class LicenseInfo(CamelModel):
    jti: str
    kid: str
    plan: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class CustomerDetailOut(CustomerOut):
    subscription: SubscriptionOut | None
    license: LicenseInfo | None
    license_revoked_at: datetime | None
    license_revoked_reason: str | None


class CustomerCreate(CamelModel):
    # Plain strings: core validates them so the API, the CLI and tasks give the same messages.
    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=255)
    company_name: str | None = Field(default=None, max_length=255)
    # Older clients send `company`; `companyName` wins when both are given.
    company: str | None = Field(default=None, max_length=255)
    plan: str | None = Field(default=None, max_length=50)


class CustomerCreated(CamelModel):
    customer: CustomerOut
    subscription: SubscriptionOut
    license: str
    license_expires_at: datetime


def _detail(
    customer: Customer, subscription: Subscription | None, license_row: License | None
) -> CustomerDetailOut:
    return CustomerDetailOut(
        **CustomerOut.model_validate(customer).model_dump(),
        subscription=SubscriptionOut.model_validate(subscription) if subscription else None,
        license=LicenseInfo.model_validate(license_row) if license_row else None,
        license_revoked_at=customer.license_revoked_at,
        license_revoked_reason=customer.license_revoked_reason,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer with a 14-day trial and its first license (admin)",
    responses=error_responses(403, 409, 413),
)
def create_customer(body: CustomerCreate, _: AdminKey, session: DbSession) -> CustomerCreated:
    customer = service.create_customer(
        session,
        email=body.email,
        name=body.name,
        company_name=body.company_name if body.company_name is not None else body.company,
        plan=body.plan,
    )
    detail = service.customer_detail(session, customer.customer_id)
    assert detail.subscription is not None and detail.license is not None
    return CustomerCreated(
        customer=CustomerOut.model_validate(customer),
        subscription=SubscriptionOut.model_validate(detail.subscription),
        license=detail.license.token,
        license_expires_at=detail.license.expires_at,
    )


@router.get("", summary="List customers (admin)")
def list_customers(
    _: AdminKey,
    session: DbSession,
    limit: int = Query(50, ge=1, le=500),
    # Bounded so a huge offset is a 422, not a database overflow (PostgreSQL bigint).
    offset: int = Query(0, ge=0, le=2_147_483_647),
) -> Page[CustomerOut]:
    rows, total = service.list_customers(session, limit=limit, offset=offset)
    return Page[CustomerOut](
        items=[CustomerOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{customer_id}",
    summary="A customer with its subscription and license (admin)",
    responses=error_responses(404),
)
def get_customer(customer_id: CustomerIdPath, _: AdminKey, session: DbSession) -> CustomerDetailOut:
    detail = service.customer_detail(session, customer_id)
    return _detail(detail.customer, detail.subscription, detail.license)
