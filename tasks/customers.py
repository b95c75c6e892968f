"""Customer tasks: creating a customer with its trial and first license (used by the CLI)."""

from __future__ import annotations

from typing import Any

from core.customers import service as customer_service
from core.db import session_scope
from tasks.licenses import RETRY_OPTIONS, license_summary
from workers.celery_app import celery_app


@celery_app.task(name="tasks.customers.create_customer", **RETRY_OPTIONS)
def create_customer(
    customer_id: str,
    email: str,
    name: str | None = None,
    company_name: str | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """Create a customer with its trial and first license (the CLI picks the id, so a
    redelivered task finds the customer it made instead of failing on the email)."""
    with session_scope() as session:
        customer = customer_service.create_customer(
            session,
            email=email,
            name=name,
            company_name=company_name,
            plan=plan,
            customer_id=customer_id,
        )
        detail = customer_service.customer_detail(session, customer.customer_id)
        subscription = detail.subscription
        return {
            "customerId": customer.customer_id,
            "email": customer.email,
            "name": customer.name,
            "companyName": customer.company_name,
            "createdAt": customer.created_at.isoformat(),
            "plan": subscription.plan if subscription else None,
            "status": subscription.status if subscription else None,
            "trialEndsAt": (
                subscription.trial_ends_at.isoformat()
                if subscription and subscription.trial_ends_at
                else None
            ),
            "license": license_summary(detail.license),
        }
