"""The instance snapshots (`instance_usage`): each instance's latest report, written by
processing and read wherever a customer's current devices are counted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Subquery, func, literal, select
from sqlalchemy.orm import Session

from core.db import dialect_insert
from core.settings import get_settings
from core.usage.held_instances import (
    counted_instance,
    hold,
    new_instances_to_hold,
    oversized_instances_to_hold,
)
from models import InstanceUsage, UsageReport, UTCDateTime


def upsert_instance_snapshots(session: Session, ids: list[int], now: datetime) -> None:
    """The newest claimed report of each instance becomes its snapshot, unless a newer one is;
    an instance created beyond its customer's cap, or claiming far beyond its plan, is held
    (core/usage/held_instances.py)."""
    to_hold = new_instances_to_hold(session, ids, now)
    to_hold += oversized_instances_to_hold(session, ids)
    ranked = (
        select(
            UsageReport.id,
            UsageReport.customer_id,
            UsageReport.instance_id,
            UsageReport.active_devices,
            UsageReport.total_devices,
            UsageReport.reported_at,
            func.row_number()
            .over(
                partition_by=(UsageReport.customer_id, UsageReport.instance_id),
                order_by=(UsageReport.reported_at.desc(), UsageReport.id.desc()),
            )
            .label("rank"),
        )
        .where(UsageReport.id.in_(ids))
        .subquery()
    )
    newest = select(
        ranked.c.customer_id,
        ranked.c.instance_id,
        ranked.c.active_devices,
        ranked.c.total_devices,
        ranked.c.reported_at,
        ranked.c.id,
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(ranked.c.rank == 1)  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    insert = dialect_insert(session)
    stmt = insert(InstanceUsage).from_select(
        ["customer_id", "instance_id", "active_devices", "total_devices", "reported_at"]
        + ["report_id", "updated_at", "first_seen_at"],
        newest,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[InstanceUsage.customer_id, InstanceUsage.instance_id],
        set_={
            "active_devices": stmt.excluded.active_devices,
            "total_devices": stmt.excluded.total_devices,
            "reported_at": stmt.excluded.reported_at,
            "report_id": stmt.excluded.report_id,
            "updated_at": stmt.excluded.updated_at,
        },
        # Reports arrive out of order: an older one never replaces a newer snapshot.
        where=InstanceUsage.reported_at < stmt.excluded.reported_at,
    )
    session.execute(stmt)
    hold(session, to_hold, now)


def fresh_since(now: datetime) -> datetime:
    """Snapshots older than this are of instances that stopped reporting: they count no more."""
    return now - timedelta(days=get_settings().usage_instance_stale_days)


def current_devices(customer_ids: Sequence[str] | None, *, now: datetime) -> Subquery:
    """Per customer: active and total devices summed over its instances' fresh snapshots (held
    ones aside), and the number of those instances. `customer_ids=None` means every customer."""
    stmt = (
        select(
            InstanceUsage.customer_id,
            func.sum(InstanceUsage.active_devices).label("active"),
            func.sum(InstanceUsage.total_devices).label("total"),
            func.count().label("instances"),
        )
        .where(InstanceUsage.reported_at >= fresh_since(now), counted_instance())
        .group_by(InstanceUsage.customer_id)
    )
    if customer_ids is not None:
        stmt = stmt.where(InstanceUsage.customer_id.in_(list(customer_ids)))
    return stmt.subquery()
