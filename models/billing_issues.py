from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class BillingIssue(Base):
    """Something about a customer's billing an operator must look at, recorded, never silently
    ignored: a second live Stripe subscription (`conflict`, double billing) or a disputed charge
    (`dispute`). One row per Stripe object; `resolved_at` is set when it no longer needs care."""

    __tablename__ = "billing_issues"
    __table_args__ = (
        UniqueConstraint("kind", "stripe_object_id", name="uq_billing_issues_object"),
        Index("ix_billing_issues_open", "resolved_at", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # conflict or dispute
    kind: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True
    )
    stripe_object_id: Mapped[str] = mapped_column(String(255))
    # Stripe's status of the object (the second subscription's, the dispute's).
    stripe_status: Mapped[str] = mapped_column(String(50))
    amount_cents: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An operator's "Resolve": who, and the note they gave (none when Stripe's state ended it).
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolution_note: Mapped[str | None] = mapped_column(Text)
