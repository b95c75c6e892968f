"""trust: a durable license change counter and instances held back beyond the per-license cap

Revision ID: 0009_trust
Revises: 0008_money_edges
"""

from collections.abc import Sequence

revision: str = "0009_trust"
down_revision: str | None = "0008_money_edges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
