"""billing operations: scheduled job runs, Stripe event handling attempts, billing issue notes

Revision ID: 0010_operations
Revises: 0009_trust
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010_operations"
down_revision: str | None = "0009_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = models.base.UTCDateTime(timezone=True)
_EVENT_INDEXES = {
    "ix_stripe_events_created": ["stripe_created"],
    "ix_stripe_events_status_created": ["status", "stripe_created"],
    "ix_stripe_events_type_created": ["type", "stripe_created"],
    "ix_stripe_events_customer_created": ["customer_id", "stripe_created"],
}


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("task", sa.String(length=255), nullable=False),
        sa.Column("last_sent_at", UTC, nullable=True),
        sa.Column("last_started_at", UTC, nullable=True),
        sa.Column("last_finished_at", UTC, nullable=True),
        sa.Column("last_outcome", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.Column("last_result", sa.String(length=500), nullable=True),
        sa.Column("last_succeeded_at", UTC, nullable=True),
        sa.Column("failures_in_a_row", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_runs")),
    )
    op.create_table(
        "stripe_event_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("attempted_at", UTC, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("license_jti", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["stripe_events.event_id"],
            name=op.f("fk_stripe_event_attempts_event_id_stripe_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_event_attempts")),
    )
    op.create_index("ix_stripe_event_attempts_event", "stripe_event_attempts", ["event_id", "id"])
    with op.batch_alter_table("stripe_events") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(length=64), nullable=True))
    for name, columns in _EVENT_INDEXES.items():
        op.create_index(name, "stripe_events", columns)
    with op.batch_alter_table("billing_issues") as batch:
        batch.add_column(sa.Column("resolved_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("billing_issues") as batch:
        batch.drop_column("resolution_note")
        batch.drop_column("resolved_by")
    for name in _EVENT_INDEXES:
        op.drop_index(name, table_name="stripe_events")
    with op.batch_alter_table("stripe_events") as batch:
        batch.drop_column("customer_id")
    op.drop_index("ix_stripe_event_attempts_event", table_name="stripe_event_attempts")
    op.drop_table("stripe_event_attempts")
    op.drop_table("job_runs")
