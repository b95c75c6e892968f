from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class UsageReport(Base):
    """A report as an instance sent it; `processed_at` is empty until a worker handled it.

    `attempts` counts processing runs, failed ones included; a report that keeps failing is
    set aside (`quarantined_at`, with `last_error`) so that it blocks nobody.
    """

    __tablename__ = "usage_reports"
    __table_args__ = (
        UniqueConstraint("customer_id", "instance_id", "reported_at", name="uq_usage_reports_key"),
        UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_reports_idem"),
        Index("ix_usage_reports_customer_time", "customer_id", "reported_at"),
        Index("ix_usage_reports_pending", "processed_at", "created_at"),
        # Retention: the pruner walks a past day's reports in reported_at order (keyset batches).
        Index("ix_usage_reports_reported_at", "reported_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    instance_id: Mapped[str] = mapped_column(String(255))
    active_devices: Mapped[int] = mapped_column(Integer)
    total_devices: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    license_jti: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    quarantined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class InstanceUsage(Base):
    """The latest report of each instance; a customer's devices are the sum over its instances
    (those not held)."""

    __tablename__ = "instance_usage"

    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    active_devices: Mapped[int] = mapped_column(Integer)
    total_devices: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    report_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # When the instance first reported: new instances per window are capped per customer.
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the instance appeared beyond that cap: it counts for no device total and no bill
    # until an operator accepts it (`accepted_at`, and `held_at` cleared).
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageAlert(Base):
    """A crossing of 80% or 100% of the plan's device limit."""

    __tablename__ = "usage_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True
    )
    threshold_percent: Mapped[int] = mapped_column(Integer)
    # Sums over a customer's instances: many instances at the accepted maximum pass INTEGER.
    active_devices: Mapped[int] = mapped_column(BigInteger)
    device_limit: Mapped[int] = mapped_column(BigInteger)
    plan: Mapped[str] = mapped_column(String(50))
    report_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageDaily(Base):
    """The daily rollup of reports per customer, instance and UTC day."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_day", "day"),)

    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reports: Mapped[int] = mapped_column(Integer)
    min_active: Mapped[int] = mapped_column(Integer)
    avg_active: Mapped[float] = mapped_column(Float)
    # The exact sum behind avg_active, so averages over several days add up without rounding.
    sum_active: Mapped[int] = mapped_column(BigInteger)
    max_active: Mapped[int] = mapped_column(Integer)
    max_total: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageRollupDay(Base):
    """A UTC day the rollup has taken on: started (late reports of it are rolled up as they are
    processed) and, once its full rollup committed, finished (the viewer then reads it from
    usage_daily instead of the raw reports). Once past retention its raw reports are pruned
    (`pruned_at`, set before the first is removed): its usage_daily rows are then final."""

    __tablename__ = "usage_rollup_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
