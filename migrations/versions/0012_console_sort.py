"""console sort: the customers list sorted by company reads an index in that order

The console's customers list sorts by company (lower-cased, then id so pages do not overlap);
the prefix-search index (text_pattern_ops) cannot give that order. Email, customer id and
creation sort through indexes that exist (uq_customers_email_lower, the unique customer_id, the
primary key).

Revision ID: 0012_console_sort
Revises: 0011_retention
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_console_sort"
down_revision: str | None = "0011_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPANY_ORDER_INDEX = "ix_customers_company_lower_order"


def upgrade() -> None:
    columns = [sa.func.lower(sa.column("company_name")).label("company_lower"), sa.column("id")]
    if op.get_bind().dialect.name == "postgresql":
        # Built without blocking sign-ups on a large table.
        with op.get_context().autocommit_block():
            # An interrupted concurrent build leaves the index INVALID (never used, yet kept
            # by IF NOT EXISTS): dropped to be built again.
            valid = (
                op.get_bind()
                .execute(
                    sa.text(
                        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                    ),
                    {"name": COMPANY_ORDER_INDEX},
                )
                .scalar()
            )
            if valid is False:
                op.drop_index(
                    COMPANY_ORDER_INDEX, table_name="customers", postgresql_concurrently=True
                )
            op.create_index(
                COMPANY_ORDER_INDEX,
                "customers",
                columns,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(COMPANY_ORDER_INDEX, "customers", columns)


def downgrade() -> None:
    op.drop_index(COMPANY_ORDER_INDEX, table_name="customers")
