"""The usage viewer's overage: billable device-days per day and the period's estimated charge."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from core.billing.metering.estimate import period_start, window_overage
from core.customers.service import create_customer
from core.db import session_scope
from core.usage.parsing import ReportInput
from core.viewer.overview import all_customers_usage
from core.viewer.queries import customer_usage
from models import Subscription
from tests.helpers.reports import store_report

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)  # the period began on Nov 10


def customer(plan: str = "starter", status: str = "active") -> str:
    with session_scope() as session:
        cid = create_customer(session, email=f"{plan}-{status}@example.com", plan=plan).customer_id
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == cid)
            .values(
                plan=plan,
                status=status,
                stripe_subscription_id=f"sub_{cid}",
                current_period_ends_at=PERIOD_END,
            )
        )
    return cid


def report(cid: str, instance: str, active: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(session, ReportInput(cid, instance, active, active, at), license_jti=None)


def day_at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_viewer_shows_overage_per_day_and_the_periods_estimated_charge() -> None:
    cid = customer()  # starter: 10 devices, 10 cents per device-day
    report(cid, "a", 30, day_at(9, 12))  # before the period: not in its device-days
    report(cid, "a", 8, day_at(12, 2))
    report(cid, "b", 5, day_at(12, 20))  # Nov 12: 8 + 5 = 13 -> 3
    report(cid, "a", 12, day_at(18, 6))  # Nov 18: 12 -> 2
    report(cid, "a", 9, day_at(19, 6))  # Nov 19: 9 -> 0
    report(cid, "a", 11, day_at(20, 9))  # today so far: 11 -> 1

    with session_scope() as session:
        usage = customer_usage(session, cid, days=3, now=NOW)

    overage = usage.overage
    assert overage is not None and overage.billed
    assert overage.daily == [
        (date(2026, 11, 18), 2),
        (date(2026, 11, 19), 0),
        (date(2026, 11, 20), 1),
    ]
    assert overage.period_start == date(2026, 11, 10)
    assert overage.period_device_days == 3 + 2 + 1
    assert (overage.unit_price_cents, overage.estimated_charge_cents) == (10, 60)


@pytest.mark.parametrize(("plan", "status"), [("starter", "trialing"), ("enterprise", "active")])
def test_no_overage_where_it_is_not_billed(plan: str, status: str) -> None:
    cid = customer(plan, status)
    report(cid, "a", 400, day_at(20, 9))
    with session_scope() as session:
        overage = customer_usage(session, cid, days=2, now=NOW).overage
    assert overage is not None and not overage.billed
    assert overage.daily == [(date(2026, 11, 19), 0), (date(2026, 11, 20), 0)]
    assert overage.estimated_charge_cents == 0


def test_window_overage_and_period_start() -> None:
    assert window_overage("professional", "past_due", [49, 52, 60]) == 2 + 10
    assert window_overage("professional", "canceled", [49, 52, 60]) == 0
    assert period_start(datetime(2026, 3, 31, tzinfo=UTC)) == date(2026, 2, 28)
    assert period_start(datetime(2026, 1, 15, tzinfo=UTC)) == date(2025, 12, 15)
    assert period_start(PERIOD_END - timedelta(days=0)) == date(2026, 11, 10)


def test_overview_of_all_customers_has_the_windows_overage() -> None:
    starter = customer()
    trialing = customer("professional", "trialing")
    report(starter, "a", 12, day_at(18, 6))
    report(starter, "b", 3, day_at(20, 6))
    report(starter, "a", 9, day_at(20, 6))  # Nov 20: 9 + 3 = 12
    report(trialing, "a", 70, day_at(19, 6))

    with session_scope() as session:
        rows = {row.customer_id: row for row in all_customers_usage(session, days=3, now=NOW)}

    assert rows[starter].overage == 2 + 0 + 2
    assert rows[trialing].overage == 0
