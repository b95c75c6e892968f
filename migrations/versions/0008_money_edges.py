"""money at the edges: meter events carried into the open period, failed by Stripe's error reports

Revision ID: 0008_money_edges
Revises: 0007_console
"""

from collections.abc import Sequence

revision: str = "0008_money_edges"
down_revision: str | None = "0007_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
