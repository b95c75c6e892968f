"""The viewer reads finished days from usage_daily (the rollup has a reader), today raw."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete

from core.db import session_scope
from core.usage.rollups import begin_rollup, rollup_day
from core.viewer.overview import all_customers_usage
from core.viewer.queries import customer_usage
from models import UsageReport
from tests.core.viewer.test_overview import TODAY, seed_overview


def _views(customer_id: str, days: int = 7) -> tuple[object, object, list[object]]:
    with session_scope() as session:
        usage = customer_usage(session, customer_id, days=days)
        overview = all_customers_usage(session, days=days)
    return usage.summary, usage.daily, overview


def _roll_up(day: date) -> None:
    # As the task runs it: two transactions.
    with session_scope() as session:
        begin_rollup(session, day)
    with session_scope() as session:
        rollup_day(session, day)


def test_rolled_up_days_give_the_same_figures_and_outlive_the_raw_reports() -> None:
    ids = seed_overview()
    before = _views(ids["busy"])
    for offset in range(1, 12):
        _roll_up(TODAY.date() - timedelta(days=offset))
    assert _views(ids["busy"]) == before

    # The raw reports of finished days are gone (retention): the figures come from usage_daily.
    with session_scope() as session:
        session.execute(delete(UsageReport).where(UsageReport.reported_at < TODAY))
    summary, daily, overview = _views(ids["busy"])
    assert (summary, daily) == before[:2]
    assert overview == before[2]
    busy = next(line for line in overview if line.customer_id == ids["busy"])
    assert list(busy.daily) == [0, 0, 0, 0, 4, 0, 8] and busy.total_reports == 4


def test_a_day_the_rollup_has_not_finished_is_read_from_the_raw_reports() -> None:
    ids = seed_overview()
    before = _views(ids["busy"])
    two_days_ago = TODAY.date() - timedelta(days=2)
    # Taken on, never finished (the rollup failed): the viewer keeps reading raw reports.
    with session_scope() as session:
        begin_rollup(session, two_days_ago)
    assert _views(ids["busy"]) == before
    # Finished days before an unfinished one do not hide it either.
    _roll_up(two_days_ago - timedelta(days=1))
    assert _views(ids["busy"]) == before


def test_averages_over_rolled_up_days_are_exact() -> None:
    ids = seed_overview()
    from tests.core.viewer.test_overview import _report

    # 1, 2 and 2 devices yesterday: 5 / 3 = 1.666..., shown as 1.7 either way.
    yesterday = datetime.combine(TODAY.date() - timedelta(days=1), datetime.min.time(), UTC)
    for minute, active in enumerate([1, 2, 2]):
        _report(ids["quiet"], "z", active, yesterday + timedelta(minutes=minute))
    before = _views(ids["quiet"])[0]
    _roll_up(yesterday.date())
    after = _views(ids["quiet"])[0]
    assert after == before and after.avg_active == 1.7 and after.total_reports == 3
