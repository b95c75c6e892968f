"""retention: what pruning needs (indexes, pruned payloads)

Revision ID: 0011_retention
Revises: 0010_operations
"""

from collections.abc import Sequence

revision: str = "0011_retention"
down_revision: str | None = "0010_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
