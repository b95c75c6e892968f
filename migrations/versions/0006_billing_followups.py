"""billing follow-ups: meter events Stripe refused for good are counted and marked failed

Revision ID: 0006_billing_followups
Revises: 0001

The columns (refusals, failed_at) belong to overage_meter_events, which 0004_metering (another
branch from 0001) creates, with these columns since this revision. Branches from 0001 run in no
fixed order, so this revision only adds them to a table made by an earlier 0004 that lacked them;
on a database where 0004 has not run yet, 0004 makes the table with them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0006_billing_followups"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "overage_meter_events"


def _columns() -> set[str] | None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(TABLE):
        return None
    return {column["name"] for column in inspector.get_columns(TABLE)}


def upgrade() -> None:
    columns = _columns()
    if columns is None or {"refusals", "failed_at"} <= columns:
        return
    with op.batch_alter_table(TABLE) as batch:
        if "refusals" not in columns:
            batch.add_column(
                sa.Column("refusals", sa.Integer(), server_default="0", nullable=False)
            )
        if "failed_at" not in columns:
            batch.add_column(
                sa.Column("failed_at", models.base.UTCDateTime(timezone=True), nullable=True)
            )


def downgrade() -> None:
    # The columns stay: 0004_metering's table has them, and dropping them here would leave that
    # table unlike its own revision (older code never reads or writes them).
    pass
