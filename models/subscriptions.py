from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Subscription(Base):
    """A customer's plan state: one row per customer, kept in line with Stripe."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), unique=True
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    plan: Mapped[str] = mapped_column(String(50))
    # trialing, active, past_due, unpaid, incomplete, canceled, expired
    status: Mapped[str] = mapped_column(String(50))
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The current billing period as Stripe states it (items[].current_period_start/_end): a
    # month back from the end is not the start (Jan 31 -> Feb 28 -> Mar 28).
    current_period_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # `created` of the newest Stripe event applied, so a late older event never wins.
    stripe_event_created: Mapped[int | None] = mapped_column(BigInteger)
    # The end of the last period Stripe was paid for: what a license grants (a renewal moves the
    # period forward before it is charged, so the period end alone is no proof of payment).
    paid_through_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's `pause_collection` is set: no invoice is collected, so no paid entitlement.
    collection_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Since when the row's device overage has been billed at its current plan (paid, never a
    # trial); None while it is not billed. The nightly metering bills a day that has no meter
    # event yet only if it started after this: an earlier day was on another plan, a trial or the
    # free tier, and today's plan says nothing about it (`core.billing.metering.days`).
    metered_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the Stripe state last applied was read: a read started earlier never overwrites it
    # (reads happen before the customer lock is taken, so they may be applied out of order).
    stripe_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
