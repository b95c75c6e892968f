"""trust: a durable license change counter and instances held back beyond the per-license cap

Revision ID: 0009_trust
Revises: 0008_money_edges
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009_trust"
down_revision: str | None = "0008_money_edges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "license_changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_changes")),
    )
    with op.batch_alter_table("instance_usage") as batch:
        batch.add_column(
            sa.Column("first_seen_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("held_at", models.base.UTCDateTime(timezone=True)))
        batch.add_column(sa.Column("accepted_at", models.base.UTCDateTime(timezone=True)))
    # Instances known before the cap existed were first seen at their oldest stored report, or
    # (reports pruned) long ago: never as new (the cap counts instances first seen in a day).
    op.get_bind().execute(
        sa.text(
            "UPDATE instance_usage SET first_seen_at = COALESCE("
            "(SELECT MIN(r.created_at) FROM usage_reports r"
            " WHERE r.customer_id = instance_usage.customer_id"
            " AND r.instance_id = instance_usage.instance_id), :long_ago)"
        ).bindparams(
            sa.bindparam(
                "long_ago",
                datetime(2000, 1, 1, tzinfo=UTC),
                type_=models.base.UTCDateTime(timezone=True),
            )
        )
    )
    with op.batch_alter_table("instance_usage") as batch:
        batch.alter_column(
            "first_seen_at",
            existing_type=models.base.UTCDateTime(timezone=True),
            nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("instance_usage") as batch:
        batch.drop_column("accepted_at")
        batch.drop_column("held_at")
        batch.drop_column("first_seen_at")
    op.drop_table("license_changes")
