from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    company_name: Mapped[str | None] = mapped_column(String(255))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Enterprise features/limits set per customer ({"features": {...}, "limits": {...}}).
    plan_overrides: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    license_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    license_revoked_reason: Mapped[str | None] = mapped_column(String(500))
    # Highest device-limit threshold (0, 80, 100 percent) the current usage has crossed.
    usage_threshold_percent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# Emails are unique whatever their letter case.
Index("uq_customers_email_lower", func.lower(Customer.email), unique=True)

# The console's prefix search (core/customers/search.py): lower-cased, text_pattern_ops so that
# LIKE 'abc%' uses them under any collation.
for _column, _label in (
    (Customer.email, "email_lower"),
    (Customer.company_name, "company_lower"),
    (Customer.customer_id, "customer_id_lower"),
):
    Index(
        f"ix_customers_{_label}_prefix",
        func.lower(_column).label(_label),
        postgresql_ops={_label: "text_pattern_ops"},
    )

# The console's customers list sorted by company (core/customers/search.py): in that order, then
# by id (the prefix index above cannot give an order under the default operators).
Index("ix_customers_company_lower_order", func.lower(Customer.company_name), Customer.id)
