"""the operator console: API key roles, console sessions and the append-only audit log

Revision ID: 0007_console
Revises: 0006_meter_event_doubt
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0007_console"
down_revision: str | None = "0006_meter_event_doubt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL refuses to change or remove an audit entry, whoever asks (TRUNCATE, which only the
# tests' cleanup runs, is not a row change).
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
"""

# The console's customer search matches prefixes of these, lower-cased (models/customers.py).
PREFIX_SEARCH_COLUMNS = (
    ("email", "email_lower"),
    ("company_name", "company_lower"),
    ("customer_id", "customer_id_lower"),
)


def stripe_event_customer() -> sa.ColumnElement[str]:
    """The Stripe customer an event's object names, as models/stripe_events.py indexes it."""
    payload = sa.column("payload", sa.JSON())
    return payload["data"]["object"]["customer"].as_string()


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        # Every key made before roles existed stays able to change things.
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="operator")
        )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name="fk_console_sessions_api_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.UniqueConstraint("session_hash", name="uq_console_sessions_session_hash"),
    )
    op.create_index("ix_console_sessions_api_key_id", "console_sessions", ["api_key_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_customer", "audit_log", ["customer_id", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])
    for column, label in PREFIX_SEARCH_COLUMNS:
        op.create_index(
            f"ix_customers_{label}_prefix",
            "customers",
            [sa.func.lower(sa.column(column)).label(label)],
            postgresql_ops={label: "text_pattern_ops"},
        )
    op.create_index("ix_stripe_events_customer", "stripe_events", [stripe_event_customer()])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(APPEND_ONLY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    # On SQLite a later batch migration of stripe_events rebuilds the table without this
    # expression index (it cannot reflect one): it may be gone already.
    op.drop_index("ix_stripe_events_customer", table_name="stripe_events", if_exists=True)
    for _, label in PREFIX_SEARCH_COLUMNS:
        op.drop_index(f"ix_customers_{label}_prefix", table_name="customers")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_customer", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_console_sessions_api_key_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
