"""The overview: customers by plan and status, monthly recurring revenue, trials about to end,
and what waits in the inboxes. A handful of grouped queries, whatever the number of customers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.billing import inbox, statuses
from core.plans import Plan, get_plan
from models import Customer, StripeEvent, Subscription, UsageReport, utcnow

TRIAL_ENDING_DAYS = 3
# Customers without a subscription row are shown under this plan and status.
NONE = "none"


@dataclass(frozen=True, slots=True)
class Overview:
    customers: int
    # {plan: {status: customers}}
    by_plan: dict[str, dict[str, int]]
    mrr_cents: int
    # Live subscriptions of plans priced per customer (enterprise): not in `mrr_cents`.
    mrr_custom_priced: int
    trials_ending: int
    stripe_events_waiting: int
    # Failed for good: they wait for an operator, not for a worker.
    stripe_events_failed: int
    usage_reports_waiting: int
    statuses: list[str] = field(default_factory=list)

    def plan_total(self, plan: str) -> int:
        return sum(self.by_plan.get(plan, {}).values())


def counts_by_plan(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(
            func.coalesce(Subscription.plan, NONE),
            func.coalesce(Subscription.status, NONE),
            func.count(),
        )
        .select_from(Customer)
        .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
        .group_by(Subscription.plan, Subscription.status)
    ).all()
    found: dict[str, dict[str, int]] = {}
    for plan, status, count in rows:
        found.setdefault(str(plan), {})[str(status)] = int(count)
    return found


def earning_recurring_revenue(now: datetime):  # type: ignore[no-untyped-def]
    """Rows whose flat price Stripe collects every month: live, collected, and (set to cancel at
    the period's end) only until that end."""
    return and_(
        Subscription.status.in_(statuses.RECURRING_REVENUE),
        Subscription.collection_paused.is_(False),
        or_(
            Subscription.cancel_at_period_end.is_(False),
            Subscription.current_period_ends_at > now,
        ),
    )


def recurring_revenue(session: Session, now: datetime) -> tuple[int, int]:
    """MRR in cents from the plans' catalogue prices, and the live subscriptions whose price is
    set per customer (not counted)."""
    rows = session.execute(
        select(Subscription.plan, func.count())
        .where(earning_recurring_revenue(now))
        .group_by(Subscription.plan)
    ).all()
    cents, custom = 0, 0
    for plan, count in rows:
        price = get_plan(plan).monthly_price_cents if plan in set(Plan) else None
        if price is None:
            custom += int(count)
        else:
            cents += price * int(count)
    return cents, custom


def trials_ending_within(days: int, now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        Subscription.status == statuses.S.TRIALING,
        Subscription.trial_ends_at > now,
        Subscription.trial_ends_at <= now + timedelta(days=days),
    )


def inbox_backlog(session: Session) -> tuple[int, int, int]:
    """Stripe events waiting to be handled, those failed for good (an operator's to look at,
    not waiting), and usage reports not processed yet."""
    by_status = dict(
        session.execute(
            select(StripeEvent.status, func.count())
            .where(StripeEvent.processed_at.is_(None))
            .group_by(StripeEvent.status)
        ).all()
    )
    failed = int(by_status.pop(inbox.FAILED, 0))
    reports = session.scalar(
        select(func.count()).select_from(UsageReport).where(UsageReport.processed_at.is_(None))
    )
    return sum(int(count) for count in by_status.values()), failed, int(reports or 0)


def overview(session: Session, *, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    by_plan = counts_by_plan(session)
    mrr, custom = recurring_revenue(session, now)
    trials = session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(trials_ending_within(TRIAL_ENDING_DAYS, now))
    )
    events, failed, reports = inbox_backlog(session)
    seen = sorted({status for per_plan in by_plan.values() for status in per_plan})
    return Overview(
        customers=sum(sum(per.values()) for per in by_plan.values()),
        by_plan=by_plan,
        mrr_cents=mrr,
        mrr_custom_priced=custom,
        trials_ending=int(trials or 0),
        stripe_events_waiting=events,
        stripe_events_failed=failed,
        usage_reports_waiting=reports,
        statuses=seen,
    )
