"""Money at risk: what could be lost if nobody looks. Each row names its customer (the page links
it): renewals whose charge failed (amount due, since when, when access ends), subscriptions set
to cancel at the period's end, disputes Stripe still has open (its status, even when resolved
here), customers over their device limit, and trials about to end with no payment method (no
Stripe subscription: nothing will be charged).

Amount due and since when come from the customer's `invoice.payment_failed` events (the first
failure of the invoice Stripe is retrying); without one, since when is the date paid through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.billing import issues, statuses
from core.billing.entitlements import access_end, ends_with_period_condition
from core.billing.metering.estimate import is_billed
from core.operations.overview import TRIAL_ENDING_DAYS, trials_ending_within
from core.plans import get_plan
from core.usage.limits import OVER_PERCENT, device_limit
from core.usage.snapshots import current_devices
from models import BillingIssue, Customer, StripeEvent, Subscription, utcnow

PAYMENT_FAILED_EVENT = "invoice.payment_failed"
# How far back failed-payment events are read (Stripe retries for up to about a month).
_FAILED_EVENTS_DAYS = 60
_LIMIT = 200


@dataclass(frozen=True, slots=True)
class CustomerRef:
    customer_id: str
    email: str
    company: str | None
    plan: str | None


@dataclass(frozen=True, slots=True)
class FailedPayment:
    customer: CustomerRef
    status: str
    amount_due_cents: int | None
    since: datetime | None
    # The license stops granting the plan then (`entitlements.access_end`).
    access_ends_at: datetime | None
    invoice_id: str | None


@dataclass(frozen=True, slots=True)
class Canceling:
    customer: CustomerRef
    ends_at: datetime | None
    monthly_cents: int | None


@dataclass(frozen=True, slots=True)
class Dispute:
    customer: CustomerRef | None
    dispute_id: str
    status: str
    amount_cents: int | None
    opened_at: datetime
    # Who resolved it here while Stripe keeps it open (None: not resolved here).
    resolved_here_by: str | None


@dataclass(frozen=True, slots=True)
class OverLimit:
    customer: CustomerRef
    devices: int
    limit: int
    # Whether the overage is billed (a paid metered plan) or the instance is refused.
    billed: bool


@dataclass(frozen=True, slots=True)
class TrialEnding:
    customer: CustomerRef
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class MoneyAtRisk:
    failed_payments: list[FailedPayment]
    canceling: list[Canceling]
    disputes: list[Dispute]
    over_limit: list[OverLimit]
    trials_without_payment: list[TrialEnding]

    @property
    def amount_due_cents(self) -> int:
        return sum(row.amount_due_cents or 0 for row in self.failed_payments)


def _ref(row: Any) -> CustomerRef:
    return CustomerRef(row.customer_id, row.email, row.company_name, row.plan)


def _customers():  # type: ignore[no-untyped-def]
    return select(
        Customer.customer_id,
        Customer.email,
        Customer.company_name,
        Subscription.plan,
        Subscription.status,
        Subscription.paid_through_at,
        Subscription.current_period_ends_at,
        Subscription.trial_ends_at,
        Subscription.stripe_subscription_id,
    ).join(Subscription, Subscription.customer_id == Customer.customer_id)


def _failed_invoices(
    session: Session, paid_through: dict[str, datetime | None], now: datetime
) -> dict[str, tuple[int | None, datetime | None, str | None]]:
    """Per customer: the amount due of its latest failed invoice (only that payload is read),
    and its first payment failure since the date it is paid through."""
    if not paid_through:
        return {}
    # Failures before the earliest paid-through date are of invoices paid since.
    known = [moment for moment in paid_through.values() if moment is not None]
    floor = (
        min(known) if len(known) == len(paid_through) else now - timedelta(days=_FAILED_EVENTS_DAYS)
    )
    failed = and_(
        StripeEvent.customer_id.in_(list(paid_through)),
        StripeEvent.type == PAYMENT_FAILED_EVENT,
        StripeEvent.stripe_created >= int(floor.timestamp()),
    )
    times = session.execute(
        select(StripeEvent.customer_id, StripeEvent.id, StripeEvent.stripe_created).where(failed)
    ).all()
    newest: dict[str, tuple[int, int]] = {}
    first: dict[str, int] = {}
    for customer_id, row_id, created in times:
        if customer_id not in newest or (created, row_id) > newest[customer_id]:
            newest[customer_id] = (created, row_id)
        due_since = paid_through.get(customer_id)
        if due_since is None or created >= int(due_since.timestamp()):
            first[customer_id] = min(created, first.get(customer_id, created))
    payloads = dict(
        session.execute(
            select(StripeEvent.customer_id, StripeEvent.payload).where(
                StripeEvent.id.in_([row_id for _, row_id in newest.values()])
            )
        ).all()
    )
    found: dict[str, tuple[int | None, datetime | None, str | None]] = {}
    for customer_id in newest:
        invoice = ((payloads.get(customer_id) or {}).get("data") or {}).get("object") or {}
        amount = invoice.get("amount_due")
        since = first.get(customer_id)
        found[customer_id] = (
            amount if isinstance(amount, int) else None,
            datetime.fromtimestamp(since, UTC) if since is not None else None,
            invoice.get("id"),
        )
    return found


def failed_payments(session: Session, now: datetime) -> list[FailedPayment]:
    rows = session.execute(
        select(Customer.customer_id, Customer.email, Customer.company_name, Subscription)
        .join(Subscription, Subscription.customer_id == Customer.customer_id)
        .where(Subscription.status.in_(statuses.PAYMENT_FAILED))
        .order_by(Subscription.paid_through_at)
        .limit(_LIMIT)
    ).all()
    paid_through = {row.customer_id: row.Subscription.paid_through_at for row in rows}
    failed = _failed_invoices(session, paid_through, now)
    found = []
    for row in rows:
        sub = row.Subscription
        amount, since, invoice_id = failed.get(row.customer_id, (None, None, None))
        found.append(
            FailedPayment(
                CustomerRef(row.customer_id, row.email, row.company_name, sub.plan),
                sub.status,
                amount,
                since or sub.paid_through_at,
                # The customer page's rule: paid through plus the grace the license gets.
                access_end(sub),
                invoice_id,
            )
        )
    return found


def canceling(session: Session) -> list[Canceling]:
    rows = session.execute(
        _customers()
        .where(ends_with_period_condition())
        .order_by(Subscription.current_period_ends_at)
        .limit(_LIMIT)
    ).all()
    return [
        Canceling(_ref(row), row.current_period_ends_at, get_plan(row.plan).monthly_price_cents)
        for row in rows
    ]


def open_disputes(session: Session) -> list[Dispute]:
    rows = session.execute(
        select(BillingIssue, Customer.email, Customer.company_name, Subscription.plan)
        .outerjoin(Customer, Customer.customer_id == BillingIssue.customer_id)
        .outerjoin(Subscription, Subscription.customer_id == BillingIssue.customer_id)
        .where(issues.open_in_stripe())
        .order_by(BillingIssue.created_at)
        .limit(_LIMIT)
    ).all()
    return [
        Dispute(
            CustomerRef(issue.customer_id, email, company, plan) if issue.customer_id else None,
            issue.stripe_object_id,
            issue.stripe_status,
            issue.amount_cents,
            issue.created_at,
            (issue.resolved_by or "an operator") if issue.resolved_at else None,
        )
        for issue, email, company, plan in rows
    ]


def over_limit(session: Session, now: datetime) -> list[OverLimit]:
    """Customers whose current devices (instances reporting lately) pass their plan's limit;
    the processing's 100 % mark narrows the search to the few at or over it."""
    candidates = list(
        session.scalars(
            select(Customer.customer_id)
            .where(Customer.usage_threshold_percent >= OVER_PERCENT)
            .limit(_LIMIT)
        )
    )
    if not candidates:
        return []
    current = current_devices(candidates, now=now)
    rows = session.execute(
        _customers()
        .add_columns(Customer.plan_overrides, func.coalesce(current.c.active, 0).label("active"))
        .outerjoin(current, current.c.customer_id == Customer.customer_id)
        .where(Customer.customer_id.in_(candidates))
    ).all()
    found = []
    for row in rows:
        limit = device_limit(row.plan, row.plan_overrides)
        if limit is not None and int(row.active) > limit:
            billed = is_billed(row.plan, row.status)
            found.append(OverLimit(_ref(row), int(row.active), limit, billed))
    return sorted(found, key=lambda item: item.limit - item.devices)


def trials_without_payment(session: Session, now: datetime) -> list[TrialEnding]:
    rows = session.execute(
        _customers()
        .where(
            trials_ending_within(TRIAL_ENDING_DAYS, now),
            Subscription.stripe_subscription_id.is_(None),
        )
        .order_by(Subscription.trial_ends_at)
        .limit(_LIMIT)
    ).all()
    return [TrialEnding(_ref(row), row.trial_ends_at) for row in rows]


@dataclass(frozen=True, slots=True)
class RiskSummary:
    """The overview's line: failed payments (with what they owe) and the counts of the rest,
    without reading the at-risk page's other lists."""

    failed_payments: list[FailedPayment]
    disputes: int
    canceling: int

    @property
    def amount_due_cents(self) -> int:
        return sum(item.amount_due_cents or 0 for item in self.failed_payments)


def risk_summary(session: Session, *, now: datetime | None = None) -> RiskSummary:
    counted = select(func.count()).select_from(Subscription)
    disputes = session.scalar(
        select(func.count()).select_from(BillingIssue).where(issues.open_in_stripe())
    )
    ending = session.scalar(counted.where(ends_with_period_condition()))
    return RiskSummary(
        failed_payments(session, now or utcnow()), int(disputes or 0), int(ending or 0)
    )


def money_at_risk(session: Session, *, now: datetime | None = None) -> MoneyAtRisk:
    now = now or utcnow()
    return MoneyAtRisk(
        failed_payments=failed_payments(session, now),
        canceling=canceling(session),
        disputes=open_disputes(session),
        over_limit=over_limit(session, now),
        trials_without_payment=trials_without_payment(session, now),
    )
