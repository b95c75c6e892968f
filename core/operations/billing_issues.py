"""The billing issues page's list: open issues (or the latest resolved), each with its customer's
company, sorted by kind, customer, amount, since or resolved (`SORTS`).

`billing_issues` holds a row per disputed charge or second subscription: open ones are few and
read through ix_billing_issues_open (resolved_at first), as are the newest resolved; another sort
of the resolved orders what that index finds, at most the table's rows (small: a row is an
incident an operator looks at)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from core.sorting import Sort, parse_sort
from models import BillingIssue, Customer

_NAME = func.lower(func.coalesce(Customer.company_name, Customer.email))
SORTS: dict[str, ColumnElement] = {  # type: ignore[type-arg]
    "kind": BillingIssue.kind,
    "customer": _NAME,
    "amount": BillingIssue.amount_cents,
    "since": BillingIssue.created_at,
    "resolved": BillingIssue.resolved_at,
}
# Open: the oldest first (the longest waiting); resolved: the latest first.
OPEN_SORT, RESOLVED_SORT = "since", "-resolved"


@dataclass(frozen=True, slots=True)
class IssueRow:
    issue: BillingIssue
    # The customer's company (or email without one), None for an issue of no customer of ours.
    customer_name: str | None


def default_sort(resolved: bool) -> str:
    return RESOLVED_SORT if resolved else OPEN_SORT


def issue_sort(value: str, resolved: bool) -> Sort:
    return parse_sort(value, SORTS, default_sort(resolved))


def list_issues(
    session: Session, *, resolved: bool = False, sort: str = "", limit: int = 50
) -> list[IssueRow]:
    order = issue_sort(sort, resolved)
    first = SORTS[order.column].desc() if order.descending else SORTS[order.column].asc()
    if order.column in ("amount", "customer"):
        first = first.nulls_last()  # an issue without an amount or a customer of ours last
    resolved_at = BillingIssue.resolved_at
    state = resolved_at.is_not(None) if resolved else resolved_at.is_(None)
    query = (
        select(BillingIssue, func.coalesce(Customer.company_name, Customer.email))
        .outerjoin(Customer, Customer.customer_id == BillingIssue.customer_id)
        .where(state)
        .order_by(
            first,
            BillingIssue.id.desc() if order.descending else BillingIssue.id,
        )
        .limit(limit)
    )
    return [IssueRow(issue, name) for issue, name in session.execute(query).all()]
