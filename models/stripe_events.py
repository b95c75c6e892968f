from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class StripeEvent(Base):
    """The webhook inbox: each Stripe event stored once, processed by a worker.

    A processed event older than STRIPE_EVENT_RETENTION_DAYS loses its payload
    (`payload_pruned_at`); its row, and with it deduplication by `event_id`, stays, and
    `customer_id` keeps whose event it was."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        Index("ix_stripe_events_pending", "processed_at", "received_at"),
        # The console's event list: newest first, whole or by state, type or customer.
        Index("ix_stripe_events_created", "stripe_created"),
        Index("ix_stripe_events_status_created", "status", "stripe_created"),
        Index("ix_stripe_events_type_created", "type", "stripe_created"),
        Index("ix_stripe_events_customer_created", "customer_id", "stripe_created"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    # webhook or reconciliation
    source: Mapped[str] = mapped_column(String(32), default="webhook")
    # pending, processed, failed, ignored
    status: Mapped[str] = mapped_column(String(32), default="pending")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Our customer the event belongs to: the one rule of core/billing/event_customers.py, set
    # when it is handled or fails (none for an event of no customer of ours). The timeline, the
    # event list and the event page all read it.
    customer_id: Mapped[str | None] = mapped_column(String(64))
    # Set when the payload was pruned.
    payload_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# An event's owner is found from an earlier event of the same Stripe customer (after
# customer.deleted cleared ours): core/billing/event_customers.py builds the same expression.
Index("ix_stripe_events_customer", StripeEvent.payload["data"]["object"]["customer"].as_string())
