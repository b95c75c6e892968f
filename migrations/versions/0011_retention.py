"""retention: what pruning needs (indexes, pruned payloads)

Usage reports get an index on reported_at (the pruner removes a past day's reports in keyset
batches), a rolled-up day records when its raw reports were pruned (its usage_daily rows are
final from then on), and a Stripe event can lose its payload while its row, with our customer
it belongs to (`customer_id`, core/billing/event_customers.py), stays. The console's meter
events page reads a window of days across customers: an index on (day, customer_id).

Revision ID: 0011_retention
Revises: 0010_operations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011_retention"
down_revision: str | None = "0010_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORTS_INDEX = "ix_usage_reports_reported_at"
METER_DAY_INDEX = "ix_overage_meter_events_day"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Built without blocking the ingress's inserts on a large table.
        with op.get_context().autocommit_block():
            op.create_index(
                REPORTS_INDEX,
                "usage_reports",
                ["reported_at"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(REPORTS_INDEX, "usage_reports", ["reported_at"])
    with op.batch_alter_table("usage_rollup_days") as batch:
        batch.add_column(
            sa.Column("pruned_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("stripe_events") as batch:
        batch.alter_column("payload", existing_type=sa.JSON(), nullable=True)
        batch.add_column(
            sa.Column("payload_pruned_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(METER_DAY_INDEX, "overage_meter_events", ["day", "customer_id"])


def downgrade() -> None:
    # A pruned payload cannot come back: such rows get an empty object to satisfy NOT NULL.
    op.execute("UPDATE stripe_events SET payload = '{}' WHERE payload IS NULL")
    op.drop_index(METER_DAY_INDEX, table_name="overage_meter_events")
    with op.batch_alter_table("stripe_events") as batch:
        batch.drop_column("payload_pruned_at")
        batch.alter_column("payload", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("usage_rollup_days") as batch:
        batch.drop_column("pruned_at")
    op.drop_index(REPORTS_INDEX, table_name="usage_reports")
