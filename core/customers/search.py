"""The console's customer list: a prefix search over email, company and customer id, filters by
plan and subscription status (or canceling: set to cancel at period end; or revoked: license
revoked), one page at a time.

Prefix matches on lower-cased columns use the `*_prefix` indexes (text_pattern_ops on
PostgreSQL, migrations/versions/0007_console.py), so a search reads a few index entries, not the
table. The list sorts by customer id, email, company or creation (`SORTS`), each through an
index in that order (the unique customer id, uq_customers_email_lower,
ix_customers_company_lower_order, the primary key), so a page of an unfiltered list of any size
reads 50 index entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from core.billing.entitlements import ends_with_period_condition
from core.billing.statuses import SubscriptionStatus
from core.errors import InvalidInputError
from core.plans import Plan
from core.sorting import Sort, parse_sort
from models import Customer, Subscription

PAGE_SIZE = 50
MAX_QUERY = 255
# The columns the list sorts by, each with what orders it (ties broken by id where not unique).
SORTS: dict[str, tuple[ColumnElement, ...]] = {  # type: ignore[type-arg]
    "customer": (Customer.customer_id,),
    "email": (func.lower(Customer.email),),
    "company": (func.lower(Customer.company_name), Customer.id),
    "created": (Customer.id,),
}
DEFAULT_SORT = "-created"
# Filters beside the subscription statuses: set to cancel at period end, license revoked.
CANCELING, REVOKED = "canceling", "revoked"


@dataclass(frozen=True, slots=True)
class CustomerRow:
    customer_id: str
    email: str
    company_name: str | None
    plan: str | None
    status: str | None
    revoked: bool
    # Set to cancel when its paid period ends (`entitlements.ends_with_period`).
    canceling: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerSearch:
    q: str = ""
    plan: str = ""
    status: str = ""
    page: int = 1
    sort: str = DEFAULT_SORT

    @property
    def order(self) -> Sort:
        return parse_sort(self.sort, SORTS, DEFAULT_SORT)


@dataclass(frozen=True, slots=True)
class CustomerPage:
    rows: list[CustomerRow]
    total: int
    page: int
    pages: int
    plans: list[str]
    statuses: list[str]


def like_prefix(text: str) -> str:
    # The operator's text is matched literally: % and _ are not wildcards here.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _conditions(wanted: CustomerSearch) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    q = wanted.q.strip().lower()
    if q:
        pattern = like_prefix(q)
        conditions.append(
            or_(
                func.lower(Customer.email).like(pattern, escape="\\"),
                func.lower(Customer.company_name).like(pattern, escape="\\"),
                func.lower(Customer.customer_id).like(pattern, escape="\\"),
            )
        )
    if wanted.plan:
        if wanted.plan not in set(Plan):
            raise InvalidInputError(f"no plan {wanted.plan!r}", field="plan")
        conditions.append(Subscription.plan == wanted.plan)
    if wanted.status == CANCELING:
        conditions.append(ends_with_period_condition())
    elif wanted.status == REVOKED:
        conditions.append(Customer.license_revoked_at.is_not(None))
    elif wanted.status:
        if wanted.status not in set(SubscriptionStatus):
            raise InvalidInputError(f"no subscription status {wanted.status!r}", field="status")
        conditions.append(Subscription.status == wanted.status)
    return conditions


def _joined(query: Select, wanted: CustomerSearch) -> Select:  # type: ignore[type-arg]
    return query.outerjoin(Subscription, Subscription.customer_id == Customer.customer_id).where(
        *_conditions(wanted)
    )


def search_customers(session: Session, wanted: CustomerSearch) -> CustomerPage:
    """One page of the customers matching, in the order asked (newest first by default), and
    how many match in all."""
    if len(wanted.q) > MAX_QUERY:
        raise InvalidInputError(f"q is longer than {MAX_QUERY} characters", field="q")
    if wanted.page < 1:
        raise InvalidInputError("page must be 1 or more", field="page")
    order = wanted.order
    columns = SORTS[order.column]
    ordering = [column.desc() for column in columns] if order.descending else list(columns)
    counted = select(func.count(Customer.id))
    # The subscription is joined only when a filter needs it: a count of every customer then
    # reads the customers' smallest index alone.
    if wanted.plan or wanted.status:
        counted = _joined(counted, wanted)
    else:
        counted = counted.where(*_conditions(wanted))
    total = session.scalar(counted) or 0
    rows = session.execute(
        _joined(
            select(
                Customer.customer_id,
                Customer.email,
                Customer.company_name,
                Subscription.plan,
                Subscription.status,
                Customer.license_revoked_at,
                ends_with_period_condition().label("canceling"),
                Customer.created_at,
            ),
            wanted,
        )
        .order_by(*ordering)
        .limit(PAGE_SIZE)
        .offset((wanted.page - 1) * PAGE_SIZE)
    )
    return CustomerPage(
        rows=[
            CustomerRow(
                customer_id=row.customer_id,
                email=row.email,
                company_name=row.company_name,
                plan=row.plan,
                status=row.status,
                revoked=row.license_revoked_at is not None,
                canceling=bool(row.canceling),
                created_at=row.created_at,
            )
            for row in rows
        ],
        total=total,
        page=wanted.page,
        pages=max(1, -(-total // PAGE_SIZE)),
        plans=[plan.value for plan in Plan],
        statuses=[status.value for status in SubscriptionStatus] + [CANCELING, REVOKED],
    )
