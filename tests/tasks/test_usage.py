"""Usage processing by a real worker: snapshots, current devices, threshold crossings, sweeper."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from core.customers.service import create_customer
from core.db import session_scope
from core.usage.parsing import ReportInput
from core.usage.processing import quarantined_reports
from models import InstanceUsage, UsageAlert, UsageReport
from tasks.usage import process_report_batch, sweep_pending_reports
from tests.conftest import pg_scalar
from tests.helpers.reports import store_report

pytestmark = pytest.mark.usefixtures("celery_worker")

# Recent: an instance silent for USAGE_INSTANCE_STALE_DAYS no longer counts in current devices.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def _customer(email: str, plan: str = "starter") -> str:
    with session_scope() as session:
        return create_customer(session, email=email, plan=plan).customer_id


def _store(customer_id: str, instance: str, active: int, total: int, at: datetime) -> int:
    with session_scope() as session:
        report = ReportInput(customer_id, instance, active, total, at)
        return store_report(session, report, license_jti=None).report_id


def _run(report_id: int) -> dict:
    return process_report_batch.delay([report_id]).get(timeout=30)


def _snapshot(customer_id: str) -> dict[str, tuple[int, int, datetime]]:
    with session_scope() as session:
        rows = session.execute(
            select(InstanceUsage).where(InstanceUsage.customer_id == customer_id)
        ).scalars()
        return {r.instance_id: (r.active_devices, r.total_devices, r.reported_at) for r in rows}


def _alerts(customer_id: str) -> list[int]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(UsageAlert.threshold_percent)
                .where(UsageAlert.customer_id == customer_id)
                .order_by(UsageAlert.id)
            )
        )


def _level(customer_id: str) -> int:
    return pg_scalar(
        f"SELECT usage_threshold_percent FROM customers WHERE customer_id = '{customer_id}'"
    )  # type: ignore[return-value]


def test_latest_report_per_instance_wins_even_out_of_order() -> None:
    cid = _customer("snap@example.com", plan="professional")
    newer = _store(cid, "prod-1", 20, 25, T0 + timedelta(hours=2))
    older = _store(cid, "prod-1", 10, 12, T0)
    other = _store(cid, "prod-2", 5, 6, T0 + timedelta(hours=1))
    for report_id in (newer, older, other):
        assert _run(report_id)["processed"] == 1
    assert _snapshot(cid) == {
        "prod-1": (20, 25, T0 + timedelta(hours=2)),
        "prod-2": (5, 6, T0 + timedelta(hours=1)),
    }
    assert pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL") == 0
    assert pg_scalar("SELECT report_id FROM instance_usage WHERE instance_id = 'prod-1'") == newer


def test_processing_twice_changes_nothing() -> None:
    cid = _customer("twice@example.com")
    report_id = _store(cid, "edge", 9, 10, T0)
    assert _run(report_id) == {
        "processed": 1,
        "customers": 1,
        "alerts": 1,
        "failed": 0,
        "quarantined": 0,
    }
    before = pg_scalar(f"SELECT processed_at::text FROM usage_reports WHERE id = {report_id}")
    assert _run(report_id) == {
        "processed": 0,
        "customers": 0,
        "alerts": 0,
        "failed": 0,
        "quarantined": 0,
    }
    assert _alerts(cid) == [80]
    assert pg_scalar(f"SELECT attempts FROM usage_reports WHERE id = {report_id}") == 1
    assert (
        pg_scalar(f"SELECT processed_at::text FROM usage_reports WHERE id = {report_id}") == before
    )


def test_crossings_are_recorded_once_per_rise_and_again_after_a_fall() -> None:
    cid = _customer("limits@example.com")  # starter: 10 devices
    series = [(7, 0, []), (8, 80, [80]), (9, 80, [80]), (10, 100, [80, 100])]
    series += [(11, 100, [80, 100]), (3, 0, [80, 100]), (8, 80, [80, 100, 80])]
    for hour, (active, level, alerts) in enumerate(series):
        _run(_store(cid, "edge", active, 12, T0 + timedelta(hours=hour)))
        assert (_level(cid), _alerts(cid)) == (level, alerts), f"after {active} devices"
    row = pg_scalar(
        f"SELECT active_devices || '/' || device_limit || ' ' || plan FROM usage_alerts "
        f"WHERE customer_id = '{cid}' AND threshold_percent = 100"
    )
    assert row == "10/10 starter"


def test_current_devices_are_the_sum_over_instances() -> None:
    cid = _customer("sum@example.com")  # starter: 10 devices
    _run(_store(cid, "a", 5, 5, T0))
    assert _alerts(cid) == []
    # Neither instance alone reaches 80%, together they do.
    _run(_store(cid, "b", 4, 4, T0))
    assert _alerts(cid) == [80]
    assert pg_scalar(f"SELECT active_devices FROM usage_alerts WHERE customer_id = '{cid}'") == 9


def test_batch_processing_handles_many_customers_and_jumps_straight_past_both_thresholds() -> None:
    quiet = _customer("quiet@example.com")
    jumpy = _customer("jumpy@example.com")
    ids = [_store(quiet, "q", hour, 10, T0 + timedelta(hours=hour)) for hour in range(5)]
    ids.append(_store(jumpy, "j", 2, 20, T0))
    ids.append(_store(jumpy, "j", 15, 20, T0 + timedelta(hours=1)))
    result = process_report_batch.delay(ids).get(timeout=30)
    assert result == {"processed": 7, "customers": 2, "alerts": 2, "failed": 0, "quarantined": 0}
    assert _snapshot(quiet) == {"q": (4, 10, T0 + timedelta(hours=4))}
    assert _snapshot(jumpy) == {"j": (15, 20, T0 + timedelta(hours=1))}
    assert _alerts(jumpy) == [80, 100] and _alerts(quiet) == []
    assert process_report_batch.delay(ids).get(timeout=30)["processed"] == 0


def test_sweeper_processes_reports_whose_task_never_ran() -> None:
    cid = _customer("sweep@example.com")
    stale = _store(cid, "lost", 3, 4, T0)
    fresh = _store(cid, "new", 1, 1, T0)
    with session_scope() as session:
        # As if the broker was down when it came in, ten minutes ago.
        session.execute(
            update(UsageReport)
            .where(UsageReport.id == stale)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    assert sweep_pending_reports.delay().get(timeout=30)["processed"] == 1
    assert pg_scalar(f"SELECT processed_at IS NOT NULL FROM usage_reports WHERE id = {stale}")
    # A report only just stored is left to its own task.
    assert pg_scalar(f"SELECT processed_at IS NULL FROM usage_reports WHERE id = {fresh}")
    assert set(_snapshot(cid)) == {"lost"}


def test_concurrent_tasks_for_one_customer_end_in_the_right_state() -> None:
    cid = _customer("busy@example.com", plan="professional")  # 50 devices
    ids = [
        _store(cid, f"i{n % 4}", n, 100, T0 + timedelta(minutes=n))
        for n in range(40)  # the last report of each instance: 36, 37, 38, 39 devices
    ]
    # Each report twice, all at once on the worker's four threads.
    results = [process_report_batch.delay([report_id]) for report_id in ids + ids]
    assert sum(result.get(timeout=60)["processed"] for result in results) == 40
    assert _snapshot(cid) == {
        f"i{k}": (36 + k, 100, T0 + timedelta(minutes=36 + k)) for k in range(4)
    }
    # 150 of 50 devices at the end: each threshold recorded exactly once on the way up.
    assert sorted(_alerts(cid)) == [80, 100]
    assert _level(cid) == 100


MAX_COUNT = 2_147_483_647


def test_instances_at_the_accepted_maximum_are_processed_and_alerted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two instances at the largest count the ingress accepts: their sum passes INTEGER. (Such
    # claims are held for an operator unless the plan's factor allows them, as it does here.)
    from core.settings import get_settings

    monkeypatch.setattr(get_settings(), "usage_instance_device_factor", 2**31)
    cid = _customer("huge@example.com")
    ids = [_store(cid, name, MAX_COUNT, MAX_COUNT, T0) for name in ("a", "b")]
    result = process_report_batch.delay(ids).get(timeout=30)
    assert result["processed"] == 2 and result["failed"] == 0
    assert (
        pg_scalar(f"SELECT max(active_devices) FROM usage_alerts WHERE customer_id = '{cid}'")
        == 2 * MAX_COUNT
    )
    assert _level(cid) == 100


@pytest.fixture
def poisoned_instance() -> Iterator[str]:
    """A real database error for one instance's snapshot, as a broken row would raise."""
    statements = [
        """CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
           BEGIN
             IF NEW.instance_id = 'poison' THEN
               RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003';
             END IF;
             RETURN NEW;
           END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER refuse_poison BEFORE INSERT ON instance_usage
           FOR EACH ROW EXECUTE FUNCTION refuse_poison()""",
    ]
    with session_scope() as session:
        for statement in statements:
            session.execute(text(statement))
    yield "poison"
    with session_scope() as session:
        session.execute(text("DROP TRIGGER refuse_poison ON instance_usage"))
        session.execute(text("DROP FUNCTION refuse_poison()"))


def test_a_report_that_keeps_failing_is_quarantined_and_blocks_nobody(
    poisoned_instance: str,
) -> None:
    cid = _customer("poison@example.com")
    poison = _store(cid, poisoned_instance, 1, 1, T0)
    good = _store(cid, "good", 2, 2, T0)
    result = process_report_batch.delay([poison, good]).get(timeout=30)
    # The good report of the same group is processed; the failure is counted on its report.
    assert (result["processed"], result["failed"], result["quarantined"]) == (1, 1, 0)
    assert set(_snapshot(cid)) == {"good"}
    assert pg_scalar(f"SELECT attempts FROM usage_reports WHERE id = {poison}") == 1
    assert "value out of range" in str(
        pg_scalar(f"SELECT last_error FROM usage_reports WHERE id = {poison}")
    )

    # The sweeper retries it a bounded number of times (USAGE_MAX_ATTEMPTS, 5), then sets it aside.
    with session_scope() as session:
        session.execute(
            update(UsageReport)
            .where(UsageReport.id == poison)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    sweeps = [sweep_pending_reports.delay().get(timeout=30) for _ in range(5)]
    assert [sweep["failed"] for sweep in sweeps] == [1, 1, 1, 1, 0]
    assert [sweep["quarantined"] for sweep in sweeps] == [0, 0, 0, 1, 0]
    assert pg_scalar(f"SELECT attempts FROM usage_reports WHERE id = {poison}") == 5
    assert pg_scalar(f"SELECT quarantined_at IS NOT NULL FROM usage_reports WHERE id = {poison}")

    # Newer reports of everyone, this customer included, are processed as before.
    later = _store(cid, "good", 3, 3, T0 + timedelta(minutes=1))
    assert _run(later)["processed"] == 1
    with session_scope() as session:
        listed = quarantined_reports(session)
    assert [(row.report_id, row.instance_id, row.attempts) for row in listed] == [
        (poison, poisoned_instance, 5)
    ]


def test_a_worker_that_is_behind_drains_small_groups_in_one_batch() -> None:
    cid = _customer("backlog@example.com", plan="enterprise")

    def store(n: int) -> int:
        return _store(cid, f"n{n % 3}", n, 100, T0 + timedelta(seconds=n))

    # Kept up (a report just stored): a group's task processes that group alone.
    assert _run(store(0))["processed"] == 1
    ids = [store(n) for n in range(1, 30)]
    assert _run(ids[0])["processed"] == 1
    # Behind (the reports waited ten seconds): the first small group's task takes the backlog,
    # and the tasks of the other groups find nothing left.
    with session_scope() as session:
        session.execute(
            update(UsageReport).values(created_at=datetime.now(UTC) - timedelta(seconds=10))
        )
    assert process_report_batch.delay(ids[1:3]).get(timeout=30)["processed"] == 28
    assert process_report_batch.delay(ids[3:6]).get(timeout=30)["processed"] == 0
    assert pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL") == 0
    assert pg_scalar("SELECT max(attempts) FROM usage_reports") == 1
    assert _snapshot(cid)["n2"] == (29, 100, T0 + timedelta(seconds=29))
