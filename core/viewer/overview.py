"""`billing usage --all`: every customer's usage line, in a few queries whatever their number.

Customers with their current devices in one query, the window's reports per customer and day in
two (core/usage/history.py: finished days from the rollup, the rest raw), never one query per
customer; the result is plain tuples, as with 10,000 customers it runs on every `--all`
(bench/usage_all.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from core.billing.metering.estimate import window_overage
from core.usage.history import window_history
from core.usage.limits import device_limit, utilisation_percent, warning_for
from core.usage.snapshots import current_devices
from core.viewer.queries import (
    DEFAULT_DAYS,
    check_days,
    customers_with_plan,
    window_days,
    window_start,
)
from models import Customer, utcnow


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
    # Billable device-days above the limit over the window (0 where overage is not billed).
    overage: int = 0


def _customers_with_current(session: Session, now: datetime) -> Any:
    """Every customer with its plan and current devices (summed over its instances' snapshots)."""
    current = current_devices(None, now=now)
    stmt = (
        customers_with_plan(current.c.active, current.c.total)
        .outerjoin(current, current.c.customer_id == Customer.customer_id)
        .order_by(Customer.id)
    )
    return session.execute(stmt)


def _totals_and_charts(
    session: Session, since: datetime, now: datetime, days: int
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Every customer's report count in the window and its per-day chart."""
    positions = {day: offset for offset, day in enumerate(window_days(since, days))}
    totals: dict[str, int] = {}
    charts: dict[str, list[int]] = {}
    for customer_id, per_day in window_history(session, since, now).items():
        chart = charts[customer_id] = [0] * days
        total = 0
        for day, figures in per_day.items():
            total += figures.reports
            offset = positions.get(day)
            if offset is not None:  # a report stamped after today counts, but has no bar
                chart[offset] = figures.active_devices
        totals[customer_id] = total
    return totals, charts


def all_customers_usage(
    session: Session, *, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> list[CustomerOverview]:
    """Every customer's overview line (in creation order), in a few queries whatever their
    number."""
    check_days(days)
    now = now or utcnow()
    since = window_start(days, now)
    totals, charts = _totals_and_charts(session, since, now, days)
    quiet = (0,) * days
    # The catalogue limit of a plan without overrides is the same for every customer on it.
    plan_limits: dict[str | None, int | None] = {}
    overview: list[CustomerOverview] = []
    rows = _customers_with_current(session, now)
    for customer_id, email, name, company, overrides, plan, status, active, total in rows:
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
                window_overage(plan, status, charts.get(customer_id, quiet)),
            )
        )
    return overview
