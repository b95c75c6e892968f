"""money at the edges: meter events carried into the open period, failed by Stripe's error reports

Revision ID: 0008_money_edges
Revises: 0007_console
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008_money_edges"
down_revision: str | None = "0007_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # When a meter event was stamped into the open billing period because its own day's period
    # was already invoiced: the time it was sent with. (An event Stripe reported invalid after
    # taking it is `failed_at`, with Stripe's reason in `last_error`: no column of its own.)
    with op.batch_alter_table("overage_meter_events") as batch:
        batch.add_column(
            sa.Column("carried_into", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # The billing period's start as Stripe states it: which period a meter event lands in.
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column(
                "current_period_starts_at", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("current_period_starts_at")
    with op.batch_alter_table("overage_meter_events") as batch:
        batch.drop_column("carried_into")
