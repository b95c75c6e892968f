"""What operators see of one customer's usage: the usage viewer (`billing usage --customer`,
`GET /api/usage/{customerId}`). The overview of every customer is core/viewer/overview.py.

Every number is aggregated in SQL; finished days come from the rollup (core/usage/history.py).
The window of `days=N` is the last N UTC calendar days, today included: day-aligned, so the
chart has exactly N bars and a day is never half in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.billing.metering.estimate import OverageEstimate, estimate_overage, period_began
from core.billing.statuses import SubscriptionStatus
from core.db import record_from
from core.errors import InvalidInputError, NotFoundError
from core.retention_policy import reports_kept_since
from core.settings import get_settings
from core.usage.history import DayFigures, InstancePeaks, window_history
from core.usage.limits import device_limit, utilisation_percent, warning_for
from core.usage.snapshots import current_devices
from models import Customer, Subscription, UsageReport, utcnow

MAX_DAYS = 366
DEFAULT_DAYS = 7


@dataclass(frozen=True, slots=True)
class UsageSummary:
    total_reports: int
    avg_active: float | None
    peak_active: int | None
    current_active: int
    current_total: int
    instances: int
    # None = unlimited (or no plan): utilisation and remaining are then None too.
    limit: int | None
    remaining: int | None
    utilization: float | None
    warning: str | None


@dataclass(frozen=True, slots=True)
class ReportRow:
    report_id: int
    reported_at: datetime
    instance_id: str
    active_devices: int
    total_devices: int
    utilization: float | None


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: date
    # The customer's devices that day: per instance the day's highest count, summed.
    active_devices: int


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    customer_id: str
    email: str
    name: str | None
    company_name: str | None
    plan: str | None
    status: str | None
    renewal_date: datetime | None
    plan_overrides: dict[str, Any] | None = field(default=None, repr=False)
    # The paid period's start as Stripe states it (None on trial or before it was stored).
    current_period_starts_at: datetime | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ReportRetention:
    """What of the window's raw reports is kept: before `kept_since` only the days' rollups."""

    kept_days: int
    kept_since: datetime
    window_reaches_past: bool

    @property
    def note(self) -> str | None:
        if not self.window_reaches_past:
            return None
        return (
            f"raw reports are kept {self.kept_days} days: reports before "
            f"{self.kept_since:%Y-%m-%d} are pruned, so they are not listed; the daily figures "
            "and the summary of those days come from the daily rollup"
        )


def report_retention(since: datetime, now: datetime) -> ReportRetention:
    kept_since = reports_kept_since(now)
    days = get_settings().usage_report_retention_days
    return ReportRetention(days, kept_since, since < kept_since)


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    customer: CustomerInfo
    days: int
    since: datetime
    summary: UsageSummary
    daily: list[DayPoint]
    reports: list[ReportRow] = field(default_factory=list)
    # Billable device overage per day and over the billing period
    # (core/billing/metering/estimate.py).
    overage: OverageEstimate | None = None
    retention: ReportRetention | None = None
    # Each instance's peak per day, from the earlier of the window's and the period's start.
    instance_peaks: InstancePeaks = field(default_factory=dict)


def check_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"days must be between 1 and {MAX_DAYS}", field="days")
    return days


def window_start(days: int, now: datetime) -> datetime:
    first_day = now.date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time.min, tzinfo=now.tzinfo)


def window_days(since: datetime, days: int) -> list[date]:
    """The window's days, oldest first: one bar each."""
    return [since.date() + timedelta(days=offset) for offset in range(days)]


def build_summary(
    *,
    total_reports: int,
    avg_active: float | None,
    peak_active: int | None,
    current_active: int,
    current_total: int,
    instances: int,
    limit: int | None,
) -> UsageSummary:
    """The viewer's summary from the raw aggregates (pure, so it is checked against hand sums)."""
    utilization = utilisation_percent(current_active, limit)
    return UsageSummary(
        total_reports=total_reports,
        avg_active=None if avg_active is None else round(float(avg_active), 1),
        peak_active=peak_active,
        current_active=current_active,
        current_total=current_total,
        instances=instances,
        limit=limit,
        remaining=None if limit is None else max(0, limit - current_active),
        utilization=utilization,
        warning=warning_for(utilization),
    )


def customers_with_plan(*columns: Any) -> Select[Any]:
    """Customers with their plan and what sets their device limit, plus `columns`; a customer
    without a subscription has plan and status None. The viewer's and the overview's base."""
    return select(
        Customer.customer_id,
        Customer.email,
        Customer.name,
        Customer.company_name,
        Customer.plan_overrides,
        Subscription.plan,
        Subscription.status,
        *columns,
    ).outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)


def _customer(session: Session, customer_id: str) -> CustomerInfo:
    row = session.execute(
        customers_with_plan(
            Subscription.trial_ends_at,
            Subscription.current_period_ends_at,
            Subscription.current_period_starts_at,
        ).where(Customer.customer_id == customer_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customerId")
    trialing = row.status == SubscriptionStatus.TRIALING
    return record_from(
        CustomerInfo,
        row,
        renewal_date=row.trial_ends_at if trialing else row.current_period_ends_at,
    )


def _current(session: Session, customer_id: str, now: datetime) -> tuple[int, int, int]:
    """Active and total devices over the instances' latest reports, and the instances."""
    current = current_devices([customer_id], now=now)
    row = session.execute(select(current.c.active, current.c.total, current.c.instances)).first()
    if row is None:
        return 0, 0, 0
    return int(row.active), int(row.total), int(row.instances)


def _reports(
    session: Session,
    customer_id: str,
    since: datetime,
    limit: int | None,
    device_limit_: int | None,
) -> list[ReportRow]:
    stmt = (
        select(
            UsageReport.id.label("report_id"),
            UsageReport.reported_at,
            UsageReport.instance_id,
            UsageReport.active_devices,
            UsageReport.total_devices,
        )
        .where(UsageReport.customer_id == customer_id, UsageReport.reported_at >= since)
        .order_by(UsageReport.reported_at.desc(), UsageReport.id.desc())
        .limit(limit)
    )
    return [
        record_from(
            ReportRow, row, utilization=utilisation_percent(row.active_devices, device_limit_)
        )
        for row in session.execute(stmt)
    ]


def _window_totals(per_day: dict[date, DayFigures]) -> DayFigures:
    totals = DayFigures()
    for figures in per_day.values():
        totals.add(figures.reports, figures.sum_active, figures.peak_active, 0)
    return totals


def customer_usage(
    session: Session,
    customer_id: str,
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    report_limit: int | None = 1000,
) -> CustomerUsage:
    """One customer's usage viewer: its reports of the window (newest first) and the summary."""
    check_days(days)
    now = now or utcnow()
    since = window_start(days, now)
    info = _customer(session, customer_id)
    # Read once from the earlier of the window's and the billing period's start: the overage
    # estimate below counts the period from the same figures.
    began = period_began(info.current_period_starts_at, info.renewal_date)
    read_from = (
        min(since, datetime.combine(began.astimezone(UTC).date(), time.min, tzinfo=UTC))
        if began is not None
        else since
    )
    instance_peaks: InstancePeaks = {}
    history = window_history(
        session, read_from, now, customer_id=customer_id, instance_peaks=instance_peaks
    ).get(customer_id, {})
    per_day = {day: figures for day, figures in history.items() if day >= since.date()}
    totals = _window_totals(per_day)
    current_active, current_total, instances = _current(session, customer_id, now)
    summary = build_summary(
        total_reports=totals.reports,
        avg_active=totals.sum_active / totals.reports if totals.reports else None,
        peak_active=totals.peak_active,
        current_active=current_active,
        current_total=current_total,
        instances=instances,
        limit=device_limit(info.plan, info.plan_overrides),
    )
    daily = [
        DayPoint(day, per_day[day].active_devices if day in per_day else 0)
        for day in window_days(since, days)
    ]
    reports = _reports(session, customer_id, since, report_limit, summary.limit)
    overage = estimate_overage(
        session,
        customer_id,
        plan=info.plan,
        status=info.status,
        period_ends_at=info.renewal_date,
        period_starts_at=info.current_period_starts_at,
        window=[(point.day, point.active_devices) for point in daily],
        now=now,
        history=(read_from.astimezone(UTC).date(), history),
    )
    retention = report_retention(since, now)
    return CustomerUsage(
        info, days, since, summary, daily, reports, overage, retention, instance_peaks
    )
