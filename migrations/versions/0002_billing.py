"""billing: paid-through date, paused collection and read time on subscriptions; billing issues

Revision ID: 0002_billing
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0002_billing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("paid_through_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("collection_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("stripe_read_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # Rows synced before this column existed were active on a period Stripe had charged for.
    op.execute(
        "UPDATE subscriptions SET paid_through_at = current_period_ends_at "
        "WHERE stripe_subscription_id IS NOT NULL AND status IN ('active', 'trialing')"
    )
    op.create_table(
        "billing_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("stripe_object_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_status", sa.String(length=50), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_billing_issues_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_issues")),
        sa.UniqueConstraint("kind", "stripe_object_id", name="uq_billing_issues_object"),
    )
    op.create_index("ix_billing_issues_open", "billing_issues", ["resolved_at", "kind"])
    op.create_index(
        op.f("ix_billing_issues_customer_id"), "billing_issues", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_billing_issues_customer_id"), table_name="billing_issues")
    op.drop_index("ix_billing_issues_open", table_name="billing_issues")
    op.drop_table("billing_issues")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("stripe_read_at")
        batch.drop_column("collection_paused")
        batch.drop_column("paid_through_at")
