"""One customer's console page: what payment, license and usage say about them, joined.

Reads only (no Stripe call): the customer, subscription and current license, 30 days of usage
with the overage this period (core/viewer/queries.py, the usage viewer's own figures), the
instances, and the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core import audit
from core.billing.entitlements import access_end, grace_days, paid_until
from core.billing.metering.estimate import OverageEstimate
from core.console.instances import InstanceRow, customer_instances
from core.console.timeline import TimelineItem, customer_timeline
from core.customers.service import customer_detail
from core.errors import NotFoundError
from core.plans import UNLIMITED
from core.settings import get_settings
from core.viewer.queries import DayPoint, customer_usage
from models import AuditEntry, Customer, License, Subscription, utcnow

CHART_DAYS = 30
# Instances that reported this recently are the ones a revocation stops.
IMPACT_DAYS = 30


@dataclass(frozen=True)
class LicenseFacts:
    """What the current license itself says (its claims), which may differ from the
    subscription until the next reissue."""

    plan: str
    max_devices: int | None
    soft_limit: bool
    status: str | None
    revoked: bool
    # The subscription's plan when the license says another one.
    subscription_plan_differs: str | None


def license_facts(lic: License, subscription: Subscription | None) -> LicenseFacts:
    claims = lic.claims or {}
    devices = (claims.get("features") or {}).get("maxDevices")
    sub_plan = subscription.plan if subscription else None
    return LicenseFacts(
        plan=lic.plan,
        max_devices=devices if isinstance(devices, int) and devices < UNLIMITED else None,
        soft_limit=claims.get("deviceLimit") == "soft",
        status=(claims.get("subscription") or {}).get("status"),
        revoked=lic.revoked_at is not None or bool((claims.get("revocation") or {}).get("revoked")),
        subscription_plan_differs=sub_plan if sub_plan and sub_plan != lic.plan else None,
    )


@dataclass(frozen=True)
class CustomerView:
    customer: Customer
    subscription: Subscription | None
    license: License | None
    license_facts: LicenseFacts | None
    access_ends_at: datetime | None
    # The days of grace counted into `access_ends_at` past what was paid (past_due only).
    access_grace_days: int | None
    # Whether that moment has passed (the page says "ended").
    access_ended: bool
    device_limit: int | None
    # Devices above the limit are billed (soft limit) rather than refused (hard).
    soft_limit: bool
    offline_grace_days: int
    days: list[DayPoint]
    overage: OverageEstimate | None
    instances: list[InstanceRow]
    timeline: list[TimelineItem]
    # The audit entry of the customer's revocation (who revoked), while revoked.
    revoked_by: AuditEntry | None

    @property
    def chart_peak(self) -> int:
        return max([point.active_devices for point in self.days] + [self.device_limit or 0, 1])


def customer_view(session: Session, customer_id: str, now: datetime | None = None) -> CustomerView:
    now = now or utcnow()
    detail = customer_detail(session, customer_id)
    usage = customer_usage(session, customer_id, days=CHART_DAYS, now=now, report_limit=0)
    instances = customer_instances(
        session, customer_id, detail.license, usage.since, now, usage.instance_peaks
    )
    timeline = customer_timeline(
        session,
        customer_id,
        [(point.day, point.active_devices) for point in usage.daily],
        usage.summary.limit,
    )
    ends = access_end(detail.subscription) if detail.subscription else None
    return CustomerView(
        customer=detail.customer,
        subscription=detail.subscription,
        license=detail.license,
        license_facts=license_facts(detail.license, detail.subscription)
        if detail.license
        else None,
        access_ends_at=ends,
        access_ended=ends is not None and ends <= now,
        access_grace_days=grace_days(detail.subscription) if detail.subscription else None,
        device_limit=usage.summary.limit,
        soft_limit=bool(usage.overage and usage.overage.billed),
        offline_grace_days=get_settings().sdk_offline_grace_days,
        days=usage.daily,
        overage=usage.overage,
        instances=instances,
        timeline=timeline,
        revoked_by=audit.revocation_entry(session, customer_id, revoked_at)
        if (revoked_at := detail.customer.license_revoked_at) is not None
        else None,
    )


@dataclass(frozen=True)
class StoppingInstance:
    instance: InstanceRow
    # At its next check-in at the earliest (None for a silent one: it may never check in); at
    # the latest when the license it holds expires and the SDK's offline grace has run out.
    stops_by: datetime | None
    stops_at_latest: datetime | None


@dataclass(frozen=True)
class RevocationImpact:
    customer: Customer
    already_revoked: bool
    stopping: list[StoppingInstance]


def revocation_impact(
    session: Session, customer_id: str, now: datetime | None = None
) -> RevocationImpact:
    """What revoking the customer's license would stop, and when."""
    now = now or utcnow()
    detail = customer_detail(session, customer_id)
    since = now - timedelta(days=IMPACT_DAYS)
    settings = get_settings()
    grace = timedelta(days=settings.sdk_offline_grace_days)
    check_in = timedelta(minutes=settings.instance_check_in_minutes)
    stopping = [
        StoppingInstance(
            instance=row,
            stops_by=None if row.silent else now + check_in,
            stops_at_latest=row.license_expires_at + grace if row.license_expires_at else None,
        )
        for row in customer_instances(session, customer_id, detail.license, since, now)
        if row.last_report_at >= since
    ]
    return RevocationImpact(
        customer=detail.customer,
        already_revoked=detail.customer.license_revoked_at is not None,
        stopping=stopping,
    )


@dataclass(frozen=True)
class CancelImpact:
    customer: Customer
    subscription: Subscription
    # The paid plan runs until then; no renewal invoice comes, and the license then lapses.
    access_ends_at: datetime | None


def cancel_impact(session: Session, customer_id: str) -> CancelImpact:
    """What setting the customer's subscription to cancel at period end would do."""
    detail = customer_detail(session, customer_id)
    if detail.subscription is None:
        raise NotFoundError(f"{customer_id} has no subscription", field="customerId")
    return CancelImpact(
        customer=detail.customer,
        subscription=detail.subscription,
        access_ends_at=paid_until(detail.subscription),
    )
