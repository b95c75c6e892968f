"""The daily usage rollup by a real worker: equal to a direct SQL aggregate, safe to run twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from core.customers.service import create_customer
from core.db import session_scope
from core.usage.parsing import ReportInput
from tasks.usage import process_report_batch, rollup_usage_day
from tests.conftest import TEST_DATABASE_URL
from tests.helpers.reports import store_report

pytestmark = pytest.mark.usefixtures("celery_worker")

DAY = date(2025, 10, 20)
START = datetime(2025, 10, 20, tzinfo=UTC)


def _rows(sql: str) -> list[tuple]:
    engine = create_engine(TEST_DATABASE_URL)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def _direct_aggregate(day: date) -> list[tuple]:
    """What the day's rollup must hold, computed by hand-written SQL over the raw reports."""
    return _rows(
        f"""
        SELECT customer_id, instance_id, count(*), min(active_devices),
               round(avg(active_devices)::numeric, 6), max(active_devices), max(total_devices)
        FROM usage_reports
        WHERE reported_at >= TIMESTAMPTZ '{day}T00:00:00+00:00'
          AND reported_at < TIMESTAMPTZ '{day}T00:00:00+00:00' + INTERVAL '1 day'
        GROUP BY customer_id, instance_id ORDER BY customer_id, instance_id
        """
    )


def _rollup(day: date) -> list[tuple]:
    return _rows(
        f"""
        SELECT customer_id, instance_id, reports, min_active, round(avg_active::numeric, 6),
               max_active, max_total
        FROM usage_daily WHERE day = DATE '{day}' ORDER BY customer_id, instance_id
        """
    )


def _whole_table() -> list[tuple]:
    return _rows("SELECT * FROM usage_daily ORDER BY customer_id, instance_id, day")


def _store(customer_id: str, instance: str, active: int, total: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(
            session, ReportInput(customer_id, instance, active, total, at), license_jti=None
        )


@pytest.fixture
def reports() -> list[str]:
    with session_scope() as session:
        customers = [
            create_customer(session, email=f"roll{n}@example.com").customer_id for n in range(2)
        ]
    first, second = customers
    # Inside the day: several instances, uneven counts so the average is not a whole number.
    for minute, active in enumerate([3, 4, 4]):
        _store(first, "a", active, 6, START + timedelta(hours=1, minutes=minute))
    _store(first, "b", 9, 9, START + timedelta(hours=23, minutes=59, seconds=59))
    _store(second, "a", 1, 2, START)  # the very first instant belongs to the day
    # Outside: the last instant before and the first instant after.
    _store(first, "a", 50, 50, START - timedelta(microseconds=1))
    _store(second, "a", 70, 80, START + timedelta(days=1))
    return customers


def test_rollup_equals_the_direct_sql_aggregate_and_running_twice_changes_nothing(
    reports: list[str],
) -> None:
    answer = rollup_usage_day.delay(DAY.isoformat()).get(timeout=30)
    assert answer == {"day": "2025-10-20", "rowsWritten": 3, "rowsTotal": 3}
    expected = _direct_aggregate(DAY)
    assert len(expected) == 3
    assert _rollup(DAY) == expected
    first = reports[0]
    # And by hand: instance "a" of the first customer reported 3, 4, 4 of 6 devices.
    assert (first, "a", 3, 3, Decimal("3.666667"), 4, 6) in _rollup(DAY)

    before = _whole_table()
    again = rollup_usage_day.delay(DAY.isoformat()).get(timeout=30)
    assert again == {"day": "2025-10-20", "rowsWritten": 0, "rowsTotal": 3}
    # Not even computed_at moves.
    assert _whole_table() == before


def test_a_rerun_after_late_reports_brings_the_day_up_to_date(reports: list[str]) -> None:
    rollup_usage_day.delay(DAY.isoformat()).get(timeout=30)
    _store(reports[1], "a", 2, 2, START + timedelta(hours=12))
    _store(reports[1], "late", 7, 8, START + timedelta(hours=13))
    answer = rollup_usage_day.delay(DAY.isoformat()).get(timeout=30)
    assert answer == {"day": "2025-10-20", "rowsWritten": 2, "rowsTotal": 4}
    assert _rollup(DAY) == _direct_aggregate(DAY)


def test_days_are_rolled_up_separately(reports: list[str]) -> None:
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        rollup_usage_day.delay(day.isoformat()).get(timeout=30)
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        assert _rollup(day) == _direct_aggregate(day)
    assert _rows("SELECT count(*) FROM usage_daily") == [(5,)]


def test_without_a_day_beat_rolls_up_yesterday(reports: list[str]) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    _store(reports[0], "a", 4, 5, datetime.combine(yesterday, datetime.min.time(), UTC))
    answer = rollup_usage_day.delay().get(timeout=30)
    assert answer["day"] == yesterday.isoformat()
    assert _rollup(yesterday) == _direct_aggregate(yesterday) != []


def _stored(customer_id: str, instance: str, active: int, at: datetime) -> int:
    with session_scope() as session:
        report = ReportInput(customer_id, instance, active, active, at)
        return store_report(session, report, license_jti=None).report_id


def test_late_reports_reach_usage_daily_when_they_are_processed(reports: list[str]) -> None:
    rollup_usage_day.delay(DAY.isoformat()).get(timeout=30)
    # Arriving after the day's rollup (an instance that was offline), for that day and for a
    # day the rollup has not taken on yet.
    late = [
        _stored(reports[1], "a", 2, START + timedelta(hours=12)),
        _stored(reports[1], "late", 7, START + timedelta(hours=13)),
        _stored(reports[0], "a", 5, START - timedelta(days=3)),
    ]
    assert process_report_batch.delay(late).get(timeout=30)["processed"] >= 3
    late_list = ", ".join(map(str, late))
    assert _rows(
        f"SELECT count(*) FROM usage_reports WHERE id IN ({late_list}) AND processed_at IS NULL"
    ) == [(0,)]
    # No rerun of the rollup: processing rolled the touched day up.
    assert _rollup(DAY) == _direct_aggregate(DAY)
    # The day not taken on is left whole to its own rollup (no half day in usage_daily).
    assert _rollup(DAY - timedelta(days=3)) == []
    rollup_usage_day.delay((DAY - timedelta(days=3)).isoformat()).get(timeout=30)
    assert _rollup(DAY - timedelta(days=3)) == _direct_aggregate(DAY - timedelta(days=3)) != []
