"""`all_customers_usage`: the `--all` overview's numbers, against hand sums, in PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.customers.service import create_customer
from core.db import session_scope
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from core.viewer.overview import all_customers_usage
from models import Customer
from tests.helpers.reports import store_report

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def _report(customer_id: str, instance: str, active: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(session, ReportInput(customer_id, instance, active, 12, at), license_jti=None)


def seed_overview() -> dict[str, str]:
    """A busy starter (two instances), an enterprise with an override, a quiet trial."""
    with session_scope() as session:
        busy = create_customer(session, email="busy@example.com", plan="starter").customer_id
        custom = create_customer(
            session, email="custom@example.com", company_name="Custom Co", plan="enterprise"
        ).customer_id
        quiet = create_customer(session, email="quiet@example.com", name="Quiet").customer_id
        session.execute(
            update(Customer)
            .where(Customer.customer_id == custom)
            .values(plan_overrides={"features": {"maxDevices": 20}})
        )
    halfway = TODAY + (NOW - TODAY) / 2
    # Today: instance a peaks at 6 (two reports), b at 2, so the day's bar is 6 + 2 = 8.
    _report(busy, "a", 3, TODAY)
    _report(busy, "a", 6, halfway)
    _report(busy, "b", 2, halfway)
    # Two days ago: only a, at 4. Ten days ago: outside a 7-day window, counted nowhere.
    _report(busy, "a", 4, TODAY - timedelta(days=2) + timedelta(hours=3))
    _report(busy, "a", 9, TODAY - timedelta(days=10))
    _report(custom, "x", 10, halfway)
    with session_scope() as session:
        process_reports(session)
    return {"busy": busy, "custom": custom, "quiet": quiet}


def test_overview_numbers_match_hand_sums() -> None:
    ids = seed_overview()
    with session_scope() as session:
        rows = {row.customer_id: row for row in all_customers_usage(session, days=7)}
    assert list(rows) == [ids["busy"], ids["custom"], ids["quiet"]]  # creation order

    busy = rows[ids["busy"]]
    assert (busy.plan, busy.limit) == ("starter", 10)
    assert busy.total_reports == 4
    assert list(busy.daily) == [0, 0, 0, 0, 4, 0, 8]
    # Current devices come from each instance's latest snapshot: a = 6 (not 9), b = 2.
    assert (busy.current_active, busy.current_total) == (8, 24)
    assert busy.utilization == 80.0
    assert busy.warning is not None and busy.warning.startswith("WARNING: 80.0%")

    custom = rows[ids["custom"]]
    assert (custom.company_name, custom.limit, custom.current_active) == ("Custom Co", 20, 10)
    assert (custom.utilization, custom.warning, custom.total_reports) == (50.0, None, 1)

    quiet = rows[ids["quiet"]]
    assert (quiet.name, quiet.total_reports, quiet.current_active) == ("Quiet", 0, 0)
    assert list(quiet.daily) == [0] * 7 and quiet.warning is None


def test_a_one_day_window_has_one_bar_and_only_todays_reports() -> None:
    ids = seed_overview()
    with session_scope() as session:
        busy = next(
            row for row in all_customers_usage(session, days=1) if row.customer_id == ids["busy"]
        )
    assert list(busy.daily) == [8]
    assert busy.total_reports == 3
