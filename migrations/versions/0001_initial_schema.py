"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 02:54:42.920566
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("company_name", sa.String(length=255), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("plan_overrides", sa.JSON(), nullable=True),
        sa.Column("license_revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("license_revoked_reason", sa.String(length=500), nullable=True),
        sa.Column("usage_threshold_percent", sa.Integer(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_customers_customer_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_customers_stripe_customer_id")),
    )
    # Emails are unique whatever their letter case (an expression index, on both backends).
    op.create_index("uq_customers_email_lower", "customers", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("stripe_created", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("received_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stripe_events_event_id")),
    )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stripe_events_pending", ["processed_at", "received_at"], unique=False
        )

    op.create_table(
        "instance_usage",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("active_devices", sa.Integer(), nullable=False),
        sa.Column("total_devices", sa.Integer(), nullable=False),
        sa.Column("reported_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_instance_usage_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "instance_id", name=op.f("pk_instance_usage")),
    )
    op.create_table(
        "licenses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=50), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issued_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_licenses_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licenses")),
        sa.UniqueConstraint("jti", name=op.f("uq_licenses_jti")),
    )
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_licenses_customer_current", ["customer_id", "superseded_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_licenses_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licenses_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=True),
        sa.Column("plan", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("trial_ends_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("current_period_ends_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stripe_event_created", sa.BigInteger(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_subscriptions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_subscriptions_customer_id")),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_subscriptions_stripe_subscription_id")
        ),
    )
    op.create_table(
        "usage_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("active_devices", sa.Integer(), nullable=False),
        sa.Column("device_limit", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=50), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_usage_alerts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_alerts")),
    )
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_alerts_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "usage_daily",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("min_active", sa.Integer(), nullable=False),
        sa.Column("avg_active", sa.Float(), nullable=False),
        sa.Column("max_active", sa.Integer(), nullable=False),
        sa.Column("max_total", sa.Integer(), nullable=False),
        sa.Column("computed_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_usage_daily_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "instance_id", "day", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "usage_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("active_devices", sa.Integer(), nullable=False),
        sa.Column("total_devices", sa.Integer(), nullable=False),
        sa.Column("reported_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("license_jti", sa.String(length=64), nullable=True),
        sa.Column("processed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_usage_reports_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reports")),
        sa.UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_reports_idem"),
        sa.UniqueConstraint(
            "customer_id", "instance_id", "reported_at", name="uq_usage_reports_key"
        ),
    )
    with op.batch_alter_table("usage_reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_reports_customer_time", ["customer_id", "reported_at"], unique=False
        )
        batch_op.create_index(
            "ix_usage_reports_pending", ["processed_at", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_reports_pending")
        batch_op.drop_index("ix_usage_reports_customer_time")

    op.drop_table("usage_reports")
    op.drop_table("usage_daily")
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_alerts_customer_id"))

    op.drop_table("usage_alerts")
    op.drop_table("subscriptions")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licenses_expires_at"))
        batch_op.drop_index(batch_op.f("ix_licenses_customer_id"))
        batch_op.drop_index("ix_licenses_customer_current")

    op.drop_table("licenses")
    op.drop_table("instance_usage")
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_events_pending")

    op.drop_table("stripe_events")
    op.drop_index("uq_customers_email_lower", table_name="customers")
    op.drop_table("customers")
    op.drop_table("api_keys")
