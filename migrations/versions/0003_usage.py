"""usage: counts that fit their columns, quarantined reports, exact daily sums, rollup days

Revision ID: 0003_usage
Revises: 0002_billing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0003_usage"
down_revision: str | None = "0002_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.alter_column(
            "active_devices", existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False
        )
        batch_op.alter_column(
            "device_limit", existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False
        )
    with op.batch_alter_table("usage_reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("quarantined_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sum_active", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_usage_daily_day", ["day"], unique=False)
    # Rows rolled up before this revision: their sum, from the average they kept.
    op.execute("UPDATE usage_daily SET sum_active = ROUND(avg_active * reports)")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.alter_column("sum_active", server_default=None)
    op.create_table(
        "usage_rollup_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_usage_rollup_days")),
    )


def downgrade() -> None:
    op.drop_table("usage_rollup_days")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_day")
        batch_op.drop_column("sum_active")
    with op.batch_alter_table("usage_reports", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("quarantined_at")
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.alter_column(
            "device_limit", existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=False
        )
        batch_op.alter_column(
            "active_devices", existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=False
        )
