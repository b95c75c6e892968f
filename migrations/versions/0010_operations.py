"""billing operations: scheduled job runs, Stripe event handling attempts, billing issue notes

Revision ID: 0010_operations
Revises: 0009_trust
"""

from collections.abc import Sequence

revision: str = "0010_operations"
down_revision: str | None = "0009_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
