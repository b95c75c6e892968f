"""overage meter events: when an attempt's outcome became unknown, and events set aside for an
operator because that was longer ago than Stripe remembers identifiers

Revision ID: 0006_meter_event_doubt
Revises: 0005_metered_since
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0006_meter_event_doubt"
down_revision: str | None = "0005_metered_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("overage_meter_events") as batch:
        batch.add_column(
            sa.Column(
                "outcome_unknown_since", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch.add_column(
            sa.Column("unconfirmed_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # An unsent event may have been taken by Stripe without its answer being recorded (a crash
    # counts no attempt), and no try was ever noted: its doubt starts with its row, as its first
    # try was made in the run that recorded it.
    op.execute(
        "UPDATE overage_meter_events SET outcome_unknown_since = created_at WHERE sent_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("overage_meter_events") as batch:
        batch.drop_column("unconfirmed_at")
        batch.drop_column("outcome_unknown_since")
