"""What operators see of usage: SEED's usage viewer, for one customer or all of them.

Every number is aggregated in SQL. `all_customers_usage` costs two queries whatever the number of
customers (customers with their current devices; the window's reports per customer and day), never
one query per customer, and returns plain tuples: with 10,000 customers it runs on every
`billing usage --all`, so it builds no per-day objects (bench/usage_all.py).

The window of `days=N` is the last N UTC calendar days, today included: day-aligned, so the chart
has exactly N bars and a day is never half in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from core.billing.statuses import SubscriptionStatus
from core.errors import InvalidInputError, NotFoundError
from core.usage.ingest import device_limit, utilisation_percent
from models import Customer, InstanceUsage, Subscription, UsageReport, utcnow

MAX_DAYS = 366
DEFAULT_DAYS = 7
WARNING_PERCENT = 80
OVER_PERCENT = 100


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


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    customer: CustomerInfo
    days: int
    since: datetime
    summary: UsageSummary
    daily: list[DayPoint]
    reports: list[ReportRow] = field(default_factory=list)


def check_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"days must be between 1 and {MAX_DAYS}", field="days")
    return days


def window_start(days: int, now: datetime) -> datetime:
    first_day = now.date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time.min, tzinfo=now.tzinfo)


def warning_for(utilization: float | None) -> str | None:
    if utilization is None:
        return None
    if utilization >= OVER_PERCENT:
        return f"OVER LIMIT: {utilization:.1f}% of device limit used! Upgrade to a higher plan."
    if utilization >= WARNING_PERCENT:
        return (
            f"WARNING: {utilization:.1f}% of device limit used! "
            "Consider upgrading to a higher plan."
        )
    return None


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
    """The SEED summary from the raw aggregates (pure, so it is checked against hand sums)."""
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


# ---------------------------------------------------------------------------------------------
# Set-based building blocks; customer_id=None means every customer


def _customer(session: Session, customer_id: str) -> CustomerInfo:
    row = session.execute(
        select(
            Customer.customer_id,
            Customer.email,
            Customer.name,
            Customer.company_name,
            Customer.plan_overrides,
            Subscription.plan,
            Subscription.status,
            Subscription.trial_ends_at,
            Subscription.current_period_ends_at,
        )
        .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
        .where(Customer.customer_id == customer_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customerId")
    return CustomerInfo(
        customer_id=row.customer_id,
        email=row.email,
        name=row.name,
        company_name=row.company_name,
        plan=row.plan,
        status=row.status,
        renewal_date=row.trial_ends_at
        if row.status == SubscriptionStatus.TRIALING
        else row.current_period_ends_at,
        plan_overrides=row.plan_overrides,
    )


def _window_stats(
    session: Session, since: datetime, customer_id: str
) -> tuple[int, float | None, int | None]:
    """Report count, average and peak active devices of the window."""
    count, avg, peak = session.execute(
        select(
            func.count(),
            func.avg(UsageReport.active_devices),
            func.max(UsageReport.active_devices),
        ).where(UsageReport.customer_id == customer_id, UsageReport.reported_at >= since)
    ).one()
    return int(count), None if avg is None else float(avg), peak


def _current(session: Session, customer_id: str) -> tuple[int, int, int]:
    """Active and total devices summed over the instances' latest reports, and the instances."""
    active, total, instances = session.execute(
        select(
            func.coalesce(func.sum(InstanceUsage.active_devices), 0),
            func.coalesce(func.sum(InstanceUsage.total_devices), 0),
            func.count(),
        ).where(InstanceUsage.customer_id == customer_id)
    ).one()
    return int(active), int(total), int(instances)


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        # The UTC calendar day whatever the session's time zone.
        return func.date(func.timezone("UTC", column))
    # SQLite stores UTC text (see UTCDateTime).
    return func.date(column)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _daily(session: Session, since: datetime, customer_id: str) -> dict[date, int]:
    """Active devices per UTC day: each instance's daily peak, summed over the instances."""
    day = _utc_day(session, UsageReport.reported_at).label("day")
    per_instance = (
        select(day, func.max(UsageReport.active_devices).label("active"))
        .where(UsageReport.customer_id == customer_id, UsageReport.reported_at >= since)
        .group_by(UsageReport.instance_id, day)
        .subquery()
    )
    stmt = select(per_instance.c.day, func.sum(per_instance.c.active)).group_by(per_instance.c.day)
    return {_as_date(row_day): int(active) for row_day, active in session.execute(stmt)}


def _points(by_day: dict[date, int], since: datetime, now: datetime) -> list[DayPoint]:
    days = (now.date() - since.date()).days + 1
    return [
        DayPoint(day, by_day.get(day, 0))
        for day in (since.date() + timedelta(days=offset) for offset in range(days))
    ]


def _reports(
    session: Session,
    customer_id: str,
    since: datetime,
    limit: int | None,
    device_limit_: int | None,
) -> list[ReportRow]:
    stmt = (
        select(
            UsageReport.id,
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
        ReportRow(
            report_id=row.id,
            reported_at=row.reported_at,
            instance_id=row.instance_id,
            active_devices=row.active_devices,
            total_devices=row.total_devices,
            utilization=utilisation_percent(row.active_devices, device_limit_),
        )
        for row in session.execute(stmt)
    ]


def _assemble(
    info: CustomerInfo,
    *,
    days: int,
    since: datetime,
    now: datetime,
    stats: tuple[int, float | None, int | None],
    current: tuple[int, int, int],
    daily: dict[date, int],
) -> CustomerUsage:
    total_reports, avg_active, peak_active = stats
    current_active, current_total, instances = current
    summary = build_summary(
        total_reports=total_reports,
        avg_active=avg_active,
        peak_active=peak_active,
        current_active=current_active,
        current_total=current_total,
        instances=instances,
        limit=device_limit(info.plan, info.plan_overrides),
    )
    return CustomerUsage(
        customer=info,
        days=days,
        since=since,
        summary=summary,
        daily=_points(daily, since, now),
    )


# ---------------------------------------------------------------------------------------------
# The two views


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
    usage = _assemble(
        info,
        days=days,
        since=since,
        now=now,
        stats=_window_stats(session, since, customer_id),
        current=_current(session, customer_id),
        daily=_daily(session, since, customer_id),
    )
    usage.reports.extend(_reports(session, customer_id, since, report_limit, usage.summary.limit))
    return usage


class CustomerOverview(NamedTuple):
    """One customer's line of the `--all` overview."""

    customer_id: str
    email: str
    name: str | None
    company_name: str | None
    plan: str | None
    # None = unlimited (or no plan): utilization is then None too.
    limit: int | None
    current_active: int
    current_total: int
    total_reports: int
    utilization: float | None
    warning: str | None
    # Active devices per day of the window, oldest first (see DayPoint).
    daily: Sequence[int]


def _customers_with_current(session: Session) -> Any:
    """Every customer with its plan and current devices (summed over its instances' snapshots)."""
    current = (
        select(
            InstanceUsage.customer_id,
            func.sum(InstanceUsage.active_devices).label("active"),
            func.sum(InstanceUsage.total_devices).label("total"),
        )
        .group_by(InstanceUsage.customer_id)
        .subquery()
    )
    stmt = (
        select(
            Customer.customer_id,
            Customer.email,
            Customer.name,
            Customer.company_name,
            Customer.plan_overrides,
            Subscription.plan,
            current.c.active,
            current.c.total,
        )
        .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
        .outerjoin(current, current.c.customer_id == Customer.customer_id)
        .order_by(Customer.id)
    )
    return session.execute(stmt)


def _reports_per_day(
    session: Session, since: datetime, days: int
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Every customer's report count in the window and its per-day chart, from one grouped query.

    The inner grouping takes each instance's highest count of a day, the outer one sums them per
    customer and day (and adds up the reports), so only customers x days rows reach Python.
    """
    day = _utc_day(session, UsageReport.reported_at).label("day")
    per_instance = (
        select(
            UsageReport.customer_id,
            day,
            func.count().label("reports"),
            func.max(UsageReport.active_devices).label("active"),
        )
        .where(UsageReport.reported_at >= since)
        .group_by(UsageReport.customer_id, UsageReport.instance_id, day)
        .subquery()
    )
    stmt = select(
        per_instance.c.customer_id,
        per_instance.c.day,
        # sum(count) is numeric in PostgreSQL: an integer converts for free.
        cast(func.sum(per_instance.c.reports), Integer),
        cast(func.sum(per_instance.c.active), Integer),
    ).group_by(per_instance.c.customer_id, per_instance.c.day)
    first = since.date()
    # A day's position in the chart, by the value the driver returns (date, or text on SQLite).
    positions: dict[object, int] = {}
    for offset in range(days):
        position_day = first + timedelta(days=offset)
        positions[position_day] = positions[position_day.isoformat()] = offset
    totals: dict[str, int] = {}
    charts: dict[str, list[int]] = {}
    for customer_id, row_day, reports, active in session.execute(stmt):
        totals[customer_id] = totals.get(customer_id, 0) + reports
        offset = positions.get(row_day)
        if offset is None:  # a report stamped after today counts, but has no bar (as _points)
            continue
        chart = charts.get(customer_id)
        if chart is None:
            chart = charts[customer_id] = [0] * days
        chart[offset] = active
    return totals, charts


def all_customers_usage(
    session: Session, *, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> list[CustomerOverview]:
    """Every customer's overview line (in creation order), in two queries whatever their number."""
    check_days(days)
    now = now or utcnow()
    since = window_start(days, now)
    totals, charts = _reports_per_day(session, since, days)
    quiet = (0,) * days
    # The catalogue limit of a plan without overrides is the same for every customer on it.
    plan_limits: dict[str | None, int | None] = {}
    overview: list[CustomerOverview] = []
    rows = _customers_with_current(session)
    for customer_id, email, name, company, overrides, plan, active, total in rows:
        if overrides:
            limit = device_limit(plan, overrides)
        elif plan in plan_limits:
            limit = plan_limits[plan]
        else:
            limit = plan_limits[plan] = device_limit(plan, None)
        active = int(active or 0)
        utilization = utilisation_percent(active, limit)
        overview.append(
            CustomerOverview(
                customer_id,
                email,
                name,
                company,
                plan,
                limit,
                active,
                int(total or 0),
                totals.get(customer_id, 0),
                utilization,
                warning_for(utilization),
                charts.get(customer_id, quiet),
            )
        )
    return overview
