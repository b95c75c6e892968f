"""What operators read in the morning: each scheduled job's last run, and every handling attempt
of a Stripe event (who or what ran it, its outcome and error, the license it issued)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class JobRun(Base):
    """The latest run of one beat job, written by beat (sent) and the worker that ran it
    (started, finished); one row per job, updated in place."""

    __tablename__ = "job_runs"

    # The beat schedule's entry name (`expire-trials`, `rollup-usage-daily` ...).
    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    task: Mapped[str] = mapped_column(String(255))
    # When beat last sent it to a worker.
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running, succeeded, retrying, failed
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    # The task's small summary (never a secret), shortened.
    last_result: Mapped[str | None] = mapped_column(String(500))
    last_succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Runs that failed in a row since the last success.
    failures_in_a_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StripeEventAttempt(Base):
    """One handling of a stored Stripe event: by the worker, `billing stripe replay` or the
    console's "Process again", with its outcome, error and the license it issued."""

    __tablename__ = "stripe_event_attempts"
    __table_args__ = (Index("ix_stripe_event_attempts_event", "event_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("stripe_events.event_id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # processed, ignored, retrying (failed, tried again later), failed (for good)
    outcome: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # worker, cli or console: which door ran it; `actor` names the operator for the last two.
    trigger: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    # The license this attempt issued (a reissue), if any.
    license_jti: Mapped[str | None] = mapped_column(String(64))
