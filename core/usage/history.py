"""A usage window's per-day figures: finished days from `usage_daily`, the rest from raw reports.

Days the rollup has finished (core/usage/rollups.py) are read from usage_daily, one row per
instance and day; the others (normally only today) from the raw reports, aggregated the same
way. A finished day after an unfinished one is still read from usage_daily: once past retention
its raw reports are pruned (core/retention/), and usage_daily is all that is left of it. Both
give, per customer and UTC day: the number of reports, the sum and the peak of their active
devices, and the day's devices (each instance's peak of the day, summed over the instances), so
every figure of the viewer is exact whichever side it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, cast, func, null, select
from sqlalchemy.orm import Session

from core.usage.days import as_date, utc_day, utc_day_start
from models import UsageDaily, UsageReport
from models.usage import UsageRollupDay


@dataclass(slots=True)
class DayFigures:
    reports: int = 0
    sum_active: int = 0
    peak_active: int | None = None
    # Per instance the day's highest count, summed over the instances.
    active_devices: int = 0

    def add(self, reports: int, sum_active: int, peak: int | None, active: int) -> None:
        self.reports += reports
        self.sum_active += sum_active
        if peak is not None and (self.peak_active is None or peak > self.peak_active):
            self.peak_active = peak
        self.active_devices += active


# customer id -> UTC day -> figures
History = dict[str, dict[date, DayFigures]]
# instance id -> UTC day -> the instance's peak of active devices that day
InstancePeaks = dict[str, dict[date, int]]


def finished_days(session: Session, first: date, today: date) -> set[date]:
    """The days of [first, today) the rollup has finished."""
    return {
        as_date(day)
        for day in session.scalars(
            select(UsageRollupDay.day).where(
                UsageRollupDay.day >= first,
                UsageRollupDay.day < today,
                UsageRollupDay.finished_at.is_not(None),
            )
        )
    }


def first_raw_day(finished: set[date], first: date, today: date) -> date:
    """The first day of [first, today) the rollup has not finished, else today."""
    day = first
    while day < today and day in finished:
        day += timedelta(days=1)
    return day


def _rolled_up(first: date, until: date, customer_id: str | None) -> Select[Any]:
    """(customer, instance, day, reports, sum, peak, devices) rows: per customer and day, or
    for one customer per instance and day (its row as it is; a few dozen)."""
    if customer_id is not None:
        return select(
            UsageDaily.customer_id,
            UsageDaily.instance_id,
            UsageDaily.day,
            UsageDaily.reports,
            UsageDaily.sum_active,
            UsageDaily.max_active,
            UsageDaily.max_active,
        ).where(
            UsageDaily.customer_id == customer_id, UsageDaily.day >= first, UsageDaily.day < until
        )
    return (
        select(
            UsageDaily.customer_id,
            null(),
            UsageDaily.day,
            cast(func.sum(UsageDaily.reports), BigInteger),
            cast(func.sum(UsageDaily.sum_active), BigInteger),
            func.max(UsageDaily.max_active),
            cast(func.sum(UsageDaily.max_active), BigInteger),
        )
        .where(UsageDaily.day >= first, UsageDaily.day < until)
        .group_by(UsageDaily.customer_id, UsageDaily.day)
    )


def _raw(session: Session, since: datetime, customer_id: str | None) -> Select[Any]:
    """The same rows as `_rolled_up`, from the raw reports."""
    day = utc_day(session, UsageReport.reported_at).label("day")
    per_instance = (
        select(
            UsageReport.customer_id,
            UsageReport.instance_id,
            day,
            func.count().label("reports"),
            func.sum(UsageReport.active_devices).label("sum_active"),
            func.max(UsageReport.active_devices).label("peak"),
            func.max(UsageReport.active_devices),
        )
        .where(UsageReport.reported_at >= since)
        .group_by(UsageReport.customer_id, UsageReport.instance_id, day)
    )
    if customer_id is not None:
        return per_instance.where(UsageReport.customer_id == customer_id)
    inner = per_instance.subquery()
    # sum() of a count or of a bigint is numeric in PostgreSQL: casting back is free.
    return select(
        inner.c.customer_id,
        null(),
        inner.c.day,
        cast(func.sum(inner.c.reports), BigInteger),
        cast(func.sum(inner.c.sum_active), BigInteger),
        func.max(inner.c.peak),
        cast(func.sum(inner.c.peak), BigInteger),
    ).group_by(inner.c.customer_id, inner.c.day)


def window_history(
    session: Session,
    since: datetime,
    now: datetime,
    *,
    customer_id: str | None = None,
    instance_peaks: InstancePeaks | None = None,
) -> History:
    """Per customer and day, the figures of every report from `since` on (two queries).

    `customer_id=None` reads every customer; reports stamped after today (clock skew) count in
    the figures of their own day. One customer is read per instance and day, and
    `instance_peaks`, when given, is filled with each instance's peak per day.
    """
    finished = finished_days(session, since.date(), now.date())
    raw_from = first_raw_day(finished, since.date(), now.date())
    history: History = {}

    def add(rows: Any, *, rolled_up: bool) -> None:
        for row_customer, instance, row_day, reports, sum_active, peak, active in rows:
            day = as_date(row_day)
            if (day in finished) != rolled_up:
                continue  # read from the other side
            figures = history.setdefault(row_customer, {}).setdefault(day, DayFigures())
            figures.add(int(reports), int(sum_active or 0), peak, int(active or 0))
            if instance_peaks is not None and instance is not None and peak is not None:
                instance_peaks.setdefault(instance, {})[day] = int(peak)

    if finished:
        add(
            session.execute(_rolled_up(min(finished), max(finished) + timedelta(1), customer_id)),
            rolled_up=True,
        )
    add(
        session.execute(_raw(session, max(since, utc_day_start(raw_from)), customer_id)),
        rolled_up=False,
    )
    return history
