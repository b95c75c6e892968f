"""The overage the usage viewer shows: billable device-days per day, and the billing period's
device-days with the charge they will add to the next invoice.

The same rule as the meter (core/billing/metering/days.py): a day's billable overage is its devices
(each instance's peak of the day, summed) above the plan's limit, on a metered plan whose
subscription is paying now. The estimate counts today so far, which the meter only sends once
the day has ended; what was actually sent is in `overage_meter_events`.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.billing.metering.meters import (
    billable_devices,
    device_limit,
    overage_billed,
    overage_unit_cents,
)
from core.plans import Plan
from core.usage.history import DayFigures, window_history
from models import OverageMeterEvent

# Paid plans are monthly (core/billing/catalogue.py): a period starts a month before it ends.
_PERIOD_MONTHS = 1


def is_billed(plan: str | None, status: str | None) -> bool:
    """Whether overage is billed for a subscription row. A row on trial says so by its status,
    which is never one of the metered ones."""
    return bool(plan and status) and overage_billed(str(plan), str(status), is_trial=False)


def billable(plan: str | None, status: str | None, devices: int) -> int:
    """A day's billable device-days for `devices` (0 when overage is not billed)."""
    if not is_billed(plan, status):
        return 0
    return billable_devices(Plan(str(plan)), devices)


def window_overage(plan: str | None, status: str | None, devices_per_day: Iterable[int]) -> int:
    """Billable device-days over a window's per-day devices (the `usage --all` column)."""
    if not is_billed(plan, status):
        return 0
    return sum(billable(plan, status, devices) for devices in devices_per_day)


def period_start(period_ends_at: datetime) -> date:
    """The first day of the monthly period ending at `period_ends_at`: the same day a month
    earlier, or that month's last day when it is shorter."""
    return period_start_at(period_ends_at).date()


def period_start_at(period_ends_at: datetime) -> datetime:
    """When the monthly period ending at `period_ends_at` began (same time of day)."""
    end = period_ends_at.astimezone(UTC)
    months = end.year * 12 + end.month - 1 - _PERIOD_MONTHS
    year, month = divmod(months, 12)
    month += 1
    day = min(end.day, calendar.monthrange(year, month)[1])
    return end.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class OverageEstimate:
    # Whether devices above the limit are billed now (the license's "soft" device limit).
    billed: bool
    limit: int | None
    unit_price_cents: int | None
    # Billable device-days per day of the viewer's window, oldest first.
    daily: list[tuple[date, int]]
    period_start: date | None
    period_device_days: int
    estimated_charge_cents: int
    # Days of an earlier, invoiced period whose device-days were sent late (a recheck, resend
    # or retry) and so billed in this period: day -> device-days, oldest first. Counted in
    # `period_device_days`.
    carried_over: list[tuple[date, int]] = field(default_factory=list)


def carried_into_period(
    session: Session, customer_id: str, since: datetime
) -> list[tuple[date, int]]:
    """The customer's days carried into the period that began at `since` (their device-days
    were stamped into it because their own period was invoiced already), oldest first."""
    rows = session.execute(
        select(OverageMeterEvent.day, func.sum(OverageMeterEvent.value))
        .where(
            OverageMeterEvent.customer_id == customer_id,
            OverageMeterEvent.carried_into >= since,
            OverageMeterEvent.sent_at.is_not(None),
        )
        .group_by(OverageMeterEvent.day)
        .order_by(OverageMeterEvent.day)
    ).all()
    return [(day, int(total)) for day, total in rows]


def period_began(
    period_starts_at: datetime | None, period_ends_at: datetime | None
) -> datetime | None:
    """When the current billing period began: Stripe's start, else a month before its end."""
    return period_starts_at or (period_start_at(period_ends_at) if period_ends_at else None)


def estimate_overage(
    session: Session,
    customer_id: str,
    *,
    plan: str | None,
    status: str | None,
    period_ends_at: datetime | None,
    window: Sequence[tuple[date, int]],
    now: datetime,
    period_starts_at: datetime | None = None,
    history: tuple[date, dict[date, DayFigures]] | None = None,
) -> OverageEstimate:
    """A customer's overage: per day of the viewer's window (its devices per day), and over the
    current billing period so far (today included). The period starts at `period_starts_at`
    (Stripe's), else a month before its end. `history` (its first day, and the customer's
    figures per day from it on) saves reading the period again when it covers it."""
    if not is_billed(plan, status) or plan is None:
        return OverageEstimate(False, None, None, [(day, 0) for day, _ in window], None, 0, 0)
    metered = Plan(plan)
    began = period_began(period_starts_at, period_ends_at)
    start = began.astimezone(UTC).date() if began else min(day for day, _ in window)
    since = datetime.combine(start, time.min, tzinfo=UTC)
    if history is not None and history[0] <= start:
        per_day = history[1]
    else:
        per_day = window_history(session, since, now, customer_id=customer_id).get(customer_id, {})
    carried = carried_into_period(session, customer_id, began or since)
    device_days = sum(
        billable(plan, status, figures.active_devices)
        for day, figures in per_day.items()
        if start <= day <= now.astimezone(UTC).date()
    ) + sum(days for _, days in carried)
    unit = overage_unit_cents(metered)
    return OverageEstimate(
        billed=True,
        limit=device_limit(metered),
        unit_price_cents=unit,
        daily=[(day, billable(plan, status, devices)) for day, devices in window],
        period_start=start,
        period_device_days=device_days,
        estimated_charge_cents=device_days * unit,
        carried_over=carried,
    )
