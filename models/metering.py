from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class OverageMeterEvent(Base):
    """One device-overage meter event for Stripe: a customer's billable device-days of one UTC day.

    Rows are written before Stripe is called and never change their value afterwards, so a crash
    between Stripe's answer and our commit is repaired by sending the same identifier again (Stripe
    refuses a second event with it). `sequence` 0 is the day's first event; a later rise of the
    day's overage is sent as the difference under the next sequence.
    """

    __tablename__ = "overage_meter_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "day", "sequence", name="uq_overage_meter_events_seq"),
        Index("ix_overage_meter_events_unsent", "sent_at", "day"),
        # The console's meter events page: a window of days, all customers.
        Index("ix_overage_meter_events_day", "day", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(Date)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # Device-days this event adds; the day's billed total is the sum over its sequences.
    value: Mapped[int] = mapped_column(Integer)
    plan: Mapped[str] = mapped_column(String(50))
    stripe_customer_id: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(100))
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Attempts Stripe refused for good (a 400 other than "already exists"); Stripe being down
    # counts in `attempts` only. At OVERAGE_EVENT_MAX_ATTEMPTS refusals `failed_at` is set: no
    # longer sent by the metering runs until an operator retries it (`billing stripe meter-retry`).
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When an attempt whose outcome is not known began: Stripe may hold the event. Set before the
    # first such attempt is made (a crash before its answer is recorded, Stripe unreachable or
    # failing); cleared when that attempt is refused, which proves it did not land. Stripe refuses
    # a resent identifier only for about 24 hours, so a resend is safe only that long after it.
    outcome_unknown_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set aside for an operator: unsent, with an outcome unknown for longer than
    # OVERAGE_EVENT_RESEND_WINDOW_HOURS, so a resend could be billed twice. No run sends it until
    # an operator has looked in Stripe and settled it (`billing stripe meter-settle`).
    unconfirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sent stamped into the open billing period, at this time, because its own day's period was
    # invoiced already (Stripe would have taken it and never billed it); None: stamped on its day.
    carried_into: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's answer: the meter event it stored (or its refusal of a duplicate identifier).
    stripe_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
