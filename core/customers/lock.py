"""The customer lock: every change to what a customer's license says (issuing, Stripe sync,
revocation, trials) takes it first, so two workers never change one customer at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from models import Customer

__all__ = ["get_for_update"]


def get_for_update(session: Session, customer_id: str) -> Customer:
    """The customer row, locked for this transaction (404 naming `customerId` if there is none).

    FOR NO KEY UPDATE serialises changes per customer on PostgreSQL without blocking the foreign
    key checks of rows that reference the customer (a usage report's insert takes FOR KEY SHARE,
    which FOR UPDATE would make wait); SQLite ignores it and relies on its single writer.
    `populate_existing` so the values read are the ones just locked.
    """
    customer = session.scalar(
        select(Customer)
        .where(Customer.customer_id == customer_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if customer is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customerId")
    return customer
