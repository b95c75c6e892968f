"""A customer's instances as the console shows them: last report, today's and the window's peak
devices, and which license each last presented (indexed queries, whatever the count; the peaks
come from the usage history the page has read already)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.usage.history import InstancePeaks, window_history
from models import InstanceUsage, License, UsageReport

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
    peaks: InstancePeaks, since: datetime, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """Per instance: the window's peak, and today's (a report stamped after today counts in
    both)."""
    window: dict[str, int] = {}
    today: dict[str, int] = {}
    for instance, days in peaks.items():
        in_window = [peak for day, peak in days.items() if day >= since.date()]
        if in_window:
            window[instance] = max(in_window)
        from_today = [peak for day, peak in days.items() if day >= now.date()]
        if from_today:
            today[instance] = max(from_today)
    return window, today


def customer_instances(
    session: Session,
    customer_id: str,
    current: License | None,
    since: datetime,
    now: datetime,
    peaks: InstancePeaks | None = None,
) -> list[InstanceRow]:
    """Every instance that ever reported, most recently heard from first. `peaks`: each
    instance's peak per day from `since` on at least, when the caller has read them."""
    latest = session.execute(
        select(InstanceUsage.instance_id, InstanceUsage.reported_at, InstanceUsage.report_id)
        .where(InstanceUsage.customer_id == customer_id)
        .order_by(InstanceUsage.reported_at.desc())
    ).all()
    if not latest:
        return []
    if peaks is None:
        peaks = {}
        window_history(session, since, now, customer_id=customer_id, instance_peaks=peaks)
    window, today = _peaks(peaks, since, now)
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
