"""A customer's instances as the console shows them: last report, today's and the window's peak
devices, and which license each last presented (four indexed queries, whatever the count)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.usage.days import utc_day_start
from core.usage.history import finished_days, first_raw_day
from models import InstanceUsage, License, UsageDaily, UsageReport

# An instance silent this long gets a warning: it may be switched off, or cut off.
SILENT_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance_id: str
    last_report_at: datetime
    today_peak: int | None
    window_peak: int | None
    # The license its last report presented: current, previous (with that license's kid),
    # revoked, or unknown (a report without one).
    license_seen: str
    license_kid: str | None
    # When the license it holds expires (the current one's when unknown).
    license_expires_at: datetime | None
    silent: bool


def _peaks(
    session: Session, customer_id: str, since: datetime, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """Per instance: the window's peak, and today's."""
    today_start = utc_day_start(now.date())
    raw_from = first_raw_day(
        finished_days(session, since.date(), now.date()), since.date(), now.date()
    )
    window: dict[str, int] = {}
    if raw_from > since.date():
        rolled = session.execute(
            select(UsageDaily.instance_id, func.max(UsageDaily.max_active))
            .where(
                UsageDaily.customer_id == customer_id,
                UsageDaily.day >= since.date(),
                UsageDaily.day < raw_from,
            )
            .group_by(UsageDaily.instance_id)
        )
        window.update({instance: int(peak) for instance, peak in rolled})
    today: dict[str, int] = {}
    raw = session.execute(
        select(
            UsageReport.instance_id,
            func.max(UsageReport.active_devices),
            func.max(case((UsageReport.reported_at >= today_start, UsageReport.active_devices))),
        )
        .where(
            UsageReport.customer_id == customer_id,
            UsageReport.reported_at >= max(since, utc_day_start(raw_from)),
        )
        .group_by(UsageReport.instance_id)
    )
    for instance, peak, today_peak in raw:
        window[instance] = max(window.get(instance, 0), int(peak))
        if today_peak is not None:
            today[instance] = int(today_peak)
    return window, today


def customer_instances(
    session: Session, customer_id: str, current: License | None, since: datetime, now: datetime
) -> list[InstanceRow]:
    """Every instance that ever reported, most recently heard from first."""
    latest = session.execute(
        select(InstanceUsage.instance_id, InstanceUsage.reported_at, InstanceUsage.report_id)
        .where(InstanceUsage.customer_id == customer_id)
        .order_by(InstanceUsage.reported_at.desc())
    ).all()
    if not latest:
        return []
    window, today = _peaks(session, customer_id, since, now)
    presented = dict(
        session.execute(
            select(UsageReport.id, UsageReport.license_jti).where(
                UsageReport.id.in_([row.report_id for row in latest])
            )
        ).all()
    )
    jtis = {jti for jti in presented.values() if jti}
    licenses = {
        row.jti: row
        for row in session.execute(
            select(License.jti, License.kid, License.expires_at, License.revoked_at).where(
                License.jti.in_(jtis)
            )
        )
    }
    rows = []
    for instance_id, reported_at, report_id in latest:
        seen = licenses.get(presented.get(report_id) or "")
        if seen is None:
            state, kid = "unknown", None
        elif current is not None and seen.jti == current.jti:
            state, kid = "current", seen.kid
        else:
            state, kid = ("revoked" if seen.revoked_at else "previous"), seen.kid
        expires = seen.expires_at if seen is not None else (current.expires_at if current else None)
        rows.append(
            InstanceRow(
                instance_id=instance_id,
                last_report_at=reported_at,
                today_peak=today.get(instance_id),
                window_peak=window.get(instance_id),
                license_seen=state,
                license_kid=kid,
                license_expires_at=expires,
                silent=now - reported_at > SILENT_AFTER,
            )
        )
    return rows
