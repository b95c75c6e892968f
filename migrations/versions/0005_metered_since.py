"""subscriptions.metered_since: since when overage is billed at the row's current plan

Revision ID: 0005_metered_since
Revises: 0004_metering
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0005_metered_since"
down_revision: str | None = "0004_metering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("metered_since", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # When a metered row took its plan is not recorded anywhere; its last change is the latest it
    # can have been. Days before it are then billed only at the plan their meter events recorded:
    # at worst a late report of such a day goes unbilled, never a day billed at the wrong plan.
    op.execute(
        "UPDATE subscriptions SET metered_since = COALESCE(updated_at, created_at) "
        "WHERE stripe_subscription_id IS NOT NULL "
        "AND plan IN ('starter', 'professional') AND status IN ('active', 'past_due')"
    )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("metered_since")
