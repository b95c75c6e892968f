"""the operator console: API key roles, console sessions and the append-only audit log

Revision ID: 0007_console
Revises: 0006_meter_event_doubt
"""

from collections.abc import Sequence

revision: str = "0007_console"
down_revision: str | None = "0006_meter_event_doubt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
