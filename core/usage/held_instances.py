"""New instances beyond the per-customer cap: held back from every device total until accepted.

A license names a customer, not its instances: an instance is whatever `instanceId` a report
says, so one leaked license could invent instances without end, and every instance's devices
are summed into the customer's totals and overage bill. Processing therefore counts the
instances a customer's reports create (`instance_usage.first_seen_at`): beyond
USAGE_NEW_INSTANCES_PER_WINDOW within USAGE_NEW_INSTANCES_WINDOW_SECONDS a new instance is held
(`held_at`). Its reports are stored and shown, but it counts for no device total, threshold or
meter event until an operator accepts it (`accept_instances`, `billing usage --accept`); the
overage re-check of the last days then bills what it reported since. So is an instance, new or
known and not yet accepted, whose report claims more devices than USAGE_INSTANCE_DEVICE_FACTOR
times its customer's device limit (a leaked license inflating the overage bill).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, select, tuple_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from core import audit
from core.errors import InvalidInputError, NotFoundError
from core.settings import get_settings
from core.usage.limits import device_limit
from models import Customer, InstanceUsage, Subscription, UsageReport, utcnow


def counted_instance() -> ColumnElement[bool]:
    """Of `instance_usage` rows: the instance counts (it is not held)."""
    return InstanceUsage.held_at.is_(None)


def held_instance_of(
    customer_id: InstrumentedAttribute[str], instance_id: InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """The instance named by these columns (of usage_daily, usage_reports) is held."""
    return exists().where(
        InstanceUsage.customer_id == customer_id,
        InstanceUsage.instance_id == instance_id,
        InstanceUsage.held_at.is_not(None),
    )


def new_instances_to_hold(
    session: Session, report_ids: list[int], now: datetime
) -> list[tuple[str, str]]:
    """Of the instances these reports would create, the (customer, instance) pairs beyond their
    customer's cap of new instances in the window, in the order the reports were stored. Call it
    with the customers locked (processing does), before the snapshots are written."""
    settings = get_settings()
    new = session.execute(
        select(UsageReport.customer_id, UsageReport.instance_id, func.min(UsageReport.id))
        .where(
            UsageReport.id.in_(report_ids),
            ~exists().where(
                InstanceUsage.customer_id == UsageReport.customer_id,
                InstanceUsage.instance_id == UsageReport.instance_id,
            ),
        )
        .group_by(UsageReport.customer_id, UsageReport.instance_id)
        .order_by(func.min(UsageReport.id))
    ).all()
    if not new:
        return []
    customers = sorted({customer_id for customer_id, _, _ in new})
    since = now - timedelta(seconds=settings.usage_new_instances_window_seconds)
    created = dict(
        session.execute(
            select(InstanceUsage.customer_id, func.count())
            .where(InstanceUsage.customer_id.in_(customers), InstanceUsage.first_seen_at >= since)
            .group_by(InstanceUsage.customer_id)
        ).all()
    )
    held: list[tuple[str, str]] = []
    for customer_id, instance_id, _ in new:
        created[customer_id] = created.get(customer_id, 0) + 1
        if created[customer_id] > settings.usage_new_instances_per_window:
            held.append((customer_id, instance_id))
    return held


def oversized_instances_to_hold(session: Session, report_ids: list[int]) -> list[tuple[str, str]]:
    """The (customer, instance) pairs, not accepted by an operator, whose reports among these
    claim more devices than USAGE_INSTANCE_DEVICE_FACTOR times the customer's device limit."""
    claims = session.execute(
        select(
            UsageReport.customer_id,
            UsageReport.instance_id,
            func.max(UsageReport.active_devices),
            func.max(UsageReport.total_devices),
        )
        .where(
            UsageReport.id.in_(report_ids),
            ~exists().where(
                InstanceUsage.customer_id == UsageReport.customer_id,
                InstanceUsage.instance_id == UsageReport.instance_id,
                InstanceUsage.accepted_at.is_not(None),
            ),
        )
        .group_by(UsageReport.customer_id, UsageReport.instance_id)
    ).all()
    if not claims:
        return []
    plans = {
        customer_id: device_limit(plan, overrides)
        for customer_id, overrides, plan in session.execute(
            select(Customer.customer_id, Customer.plan_overrides, Subscription.plan)
            .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
            .where(Customer.customer_id.in_({claim[0] for claim in claims}))
        )
    }
    factor = get_settings().usage_instance_device_factor
    return [
        (customer_id, instance_id)
        for customer_id, instance_id, active, total in claims
        if (limit := plans.get(customer_id)) is not None and max(active, total) > factor * limit
    ]


def hold(session: Session, instances: Sequence[tuple[str, str]], now: datetime) -> None:
    """Hold these (customer, instance) pairs back from every count."""
    if instances:
        session.execute(
            update(InstanceUsage)
            .where(tuple_(InstanceUsage.customer_id, InstanceUsage.instance_id).in_(instances))
            .values(held_at=now)
        )


@dataclass(frozen=True, slots=True)
class HeldInstance:
    customer_id: str
    instance_id: str
    first_seen_at: datetime
    held_at: datetime
    active_devices: int
    total_devices: int


def held_instances(session: Session, customer_id: str | None = None) -> list[HeldInstance]:
    """Instances held back (of one customer, or all), oldest first."""
    stmt = select(
        InstanceUsage.customer_id,
        InstanceUsage.instance_id,
        InstanceUsage.first_seen_at,
        InstanceUsage.held_at,
        InstanceUsage.active_devices,
        InstanceUsage.total_devices,
    ).where(InstanceUsage.held_at.is_not(None))
    if customer_id is not None:
        stmt = stmt.where(InstanceUsage.customer_id == customer_id)
    rows = session.execute(stmt.order_by(InstanceUsage.held_at, InstanceUsage.instance_id))
    return [HeldInstance(*row) for row in rows]


def accept_instances(session: Session, customer_id: str, instance_ids: Sequence[str]) -> list[str]:
    """An operator's word that these held instances are genuine: from now on they count (and
    the days the overage job re-checks bill them). Idempotent: an instance already counted is
    left as it is. NotFoundError naming instanceId for one the customer never reported."""
    wanted = sorted({instance_id.strip() for instance_id in instance_ids if instance_id.strip()})
    if not wanted:
        raise InvalidInputError("name at least one instance to accept", field="instanceId")
    known = set(
        session.scalars(
            select(InstanceUsage.instance_id).where(
                InstanceUsage.customer_id == customer_id, InstanceUsage.instance_id.in_(wanted)
            )
        )
    )
    unknown = [instance_id for instance_id in wanted if instance_id not in known]
    if unknown:
        raise NotFoundError(
            f"customer {customer_id} has no instance {', '.join(unknown)}", field="instanceId"
        )
    accepted = session.scalars(
        update(InstanceUsage)
        .where(
            and_(
                InstanceUsage.customer_id == customer_id,
                InstanceUsage.instance_id.in_(wanted),
                InstanceUsage.held_at.is_not(None),
            )
        )
        .values(held_at=None, accepted_at=utcnow())
        .returning(InstanceUsage.instance_id)
    )
    counted = sorted(accepted)
    if counted:
        audit.record(
            session,
            "usage.instances.accept",
            customer_id=customer_id,
            before={"held": counted},
            after={"counted": counted},
        )
    return counted
