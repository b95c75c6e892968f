"""Which customer an operator means by what they typed in a filter: our customer id, a Stripe
customer id, or (part of) a company name or email that names exactly one customer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models import Customer


@dataclass(frozen=True)
class CustomerLookup:
    customer_id: str | None
    # Why nothing is filtered by (no match, or several), said on the page.
    note: str | None = None


def lookup_customer(session: Session, typed: str) -> CustomerLookup:
    typed = typed.strip()
    if not typed or typed.startswith("cust_"):
        return CustomerLookup(typed or None)
    if typed.startswith("cus_"):
        found = session.scalar(
            select(Customer.customer_id).where(Customer.stripe_customer_id == typed)
        )
        if found is None:
            return CustomerLookup(None, f"No customer of ours has the Stripe customer {typed}.")
        return CustomerLookup(found)
    pattern = (
        "%" + typed.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    matches = list(
        session.scalars(
            select(Customer.customer_id)
            .where(
                or_(
                    func.lower(Customer.company_name).like(pattern, escape="\\"),
                    func.lower(Customer.email).like(pattern, escape="\\"),
                )
            )
            .limit(2)
        )
    )
    if not matches:
        return CustomerLookup(None, f"No customer's company or email contains “{typed}”.")
    if len(matches) > 1:
        return CustomerLookup(
            None, f"Several customers match “{typed}”: give more of the name, or the customer id."
        )
    return CustomerLookup(matches[0])
