"""The one place the billing tables are queried by key: a customer's subscription row.

A customer has one subscription row. Every module that needs it (checkout, plan changes, sync,
trials, the license's content) calls `get_subscription`, so "which row is the customer's?" has one
answer. `populate_existing` makes a read after a lock return the values just locked, not a copy
loaded earlier in the same session.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Subscription


def get_subscription(session: Session, customer_id: str) -> Subscription | None:
    """The customer's subscription row (None before their first trial or checkout)."""
    return session.scalar(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )


def customer_of_subscription(session: Session, stripe_subscription_id: str) -> str | None:
    """Our customer whose row follows Stripe subscription `stripe_subscription_id`."""
    return session.scalar(
        select(Subscription.customer_id).where(
            Subscription.stripe_subscription_id == stripe_subscription_id
        )
    )
