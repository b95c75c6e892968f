"""Pruning raw usage reports past USAGE_REPORT_RETENTION_DAYS, by a real worker on PostgreSQL:
exactly what is past retention goes, the daily rollup stays as it was, reruns change nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update

from core.customers.service import create_customer
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from core.usage.rollups import begin_rollup, rollup_day
from models import UsageDaily, UsageReport
from models.usage import UsageRollupDay
from tasks.maintenance import prune_retention
from tests.helpers.reports import store_report

pytestmark = pytest.mark.usefixtures("celery_worker")

TODAY = datetime.now(UTC).date()
RETENTION = get_settings().usage_report_retention_days
# The first day kept, and the last one pruned.
FIRST_KEPT = TODAY - timedelta(days=RETENTION)
LAST_PRUNED = FIRST_KEPT - timedelta(days=1)
OLD = FIRST_KEPT - timedelta(days=30)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def _store(customer_id: str, instance: str, active: int, at: datetime) -> int:
    with session_scope() as session:
        stored = store_report(
            session, ReportInput(customer_id, instance, active, 50, at), license_jti=None
        )
    return stored.report_id


def _roll_up(*days: date) -> None:
    for day in days:
        with session_scope() as session:
            begin_rollup(session, day)
        with session_scope() as session:
            rollup_day(session, day)


def _report_ids() -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(UsageReport.id)))


def _daily() -> list[tuple]:
    with session_scope() as session:
        return [
            (row.customer_id, row.instance_id, row.day, row.reports, row.sum_active, row.max_active)
            for row in session.scalars(select(UsageDaily).order_by(UsageDaily.day))
        ]


def _prune(dry_run: bool = False) -> dict[str, int]:
    return prune_retention.delay(dry_run).get(timeout=60)


@pytest.fixture
def history() -> dict[str, set[int]]:
    """Reports on both sides of the retention boundary, processed and rolled up, plus the
    kinds that must stay whatever their age."""
    with session_scope() as session:
        customer_id = create_customer(session, email="old@example.com").customer_id
    pruned, kept = set(), set()
    for day in (OLD, LAST_PRUNED):
        pruned |= {_store(customer_id, "edge-1", 10 + n, _at(day, n)) for n in range(3)}
        pruned.add(_store(customer_id, "edge-2", 7, _at(day, 23, 59)))
    for day in (FIRST_KEPT, TODAY - timedelta(days=1)):
        kept |= {_store(customer_id, "edge-1", 20 + n, _at(day, n)) for n in range(3)}
    quarantined = _store(customer_id, "edge-3", 4, _at(OLD, 12))
    with session_scope() as session:
        process_reports(session)
    # Set aside after failing (a finished quarantine entry): goes with its day.
    with session_scope() as session:
        session.execute(
            update(UsageReport)
            .where(UsageReport.id == quarantined)
            .values(processed_at=None, quarantined_at=datetime.now(UTC), attempts=5)
        )
    pruned.add(quarantined)
    _roll_up(OLD, LAST_PRUNED, FIRST_KEPT, TODAY - timedelta(days=1))
    # Never rolled up, or still waiting for a worker: kept, however old.
    not_rolled_up = OLD - timedelta(days=1)
    kept.add(_store(customer_id, "edge-1", 5, _at(not_rolled_up, 3)))
    with session_scope() as session:
        process_reports(session)
    kept.add(_store(customer_id, "edge-1", 6, _at(OLD, 18)))
    return {"pruned": pruned, "kept": kept, "customer": {customer_id}}  # type: ignore[dict-item]


def test_pruning_removes_exactly_the_reports_past_retention_and_keeps_the_rollup(
    history: dict[str, set[int]],
) -> None:
    daily_before = _daily()
    assert _report_ids() == history["pruned"] | history["kept"]

    assert _prune()["usage_reports"] == len(history["pruned"])

    assert _report_ids() == history["kept"]
    assert _daily() == daily_before
    with session_scope() as session:
        frozen = set(
            session.scalars(select(UsageRollupDay.day).where(UsageRollupDay.pruned_at.is_not(None)))
        )
    assert frozen == {OLD, LAST_PRUNED}
    # Idempotent: the rerun finds nothing, and changes nothing.
    assert _prune()["usage_reports"] == 0
    assert _report_ids() == history["kept"]
    assert _daily() == daily_before


def test_dry_run_counts_what_would_go_and_changes_nothing(history: dict[str, set[int]]) -> None:
    daily_before = _daily()
    assert _prune(dry_run=True)["usage_reports"] == len(history["pruned"])
    assert _report_ids() == history["pruned"] | history["kept"]
    assert _daily() == daily_before
    with session_scope() as session:
        assert (
            session.scalar(select(UsageRollupDay.day).where(UsageRollupDay.pruned_at.is_not(None)))
            is None
        )


def test_a_report_redelivered_after_its_day_was_pruned_changes_no_rollup(
    history: dict[str, set[int]],
) -> None:
    _prune()
    daily_before = _daily()
    (customer_id,) = history["customer"]
    # The instance sends its old report again (and a new one of the pruned day): stored, since
    # the original is gone, but the day's rollup is final.
    again = _store(customer_id, "edge-1", 10, _at(LAST_PRUNED, 0))
    _store(customer_id, "edge-1", 99, _at(LAST_PRUNED, 5))
    with session_scope() as session:
        process_reports(session)
    _roll_up(LAST_PRUNED)
    assert _daily() == daily_before
    with session_scope() as session:
        assert rollup_day(session, LAST_PRUNED).pruned
    # ... and the next prune removes them (with the old report that was still pending and is
    # processed now), the rollup untouched.
    assert _prune()["usage_reports"] == 3
    assert again not in _report_ids()
    assert _daily() == daily_before


def test_expired_console_sessions_are_removed_and_live_ones_kept() -> None:
    from core.api_keys import create_api_key
    from core.console.sessions import current_user, sign_in
    from models import ConsoleSession

    with session_scope() as session:
        key = create_api_key(session, "operator").key
        idle, aged, live = (sign_in(session, key) for _ in range(3))
    now = datetime.now(UTC)
    settings = get_settings()
    with session_scope() as session:
        for signed_in, created, seen in (
            (idle, now, now - timedelta(minutes=settings.console_session_idle_minutes + 1)),
            (aged, now - timedelta(hours=settings.console_session_max_hours + 1), now),
        ):
            user = current_user(session, signed_in.session_id)
            assert user is not None
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id == user.session_row_id)
                .values(created_at=created, last_seen_at=seen)
            )

    assert _prune(dry_run=True)["console_sessions"] == 2
    assert _prune()["console_sessions"] == 2
    assert _prune()["console_sessions"] == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 1
        assert current_user(session, live.session_id) is not None
