"""`billing usage --customer|--all` and `billing tasks run rollup` against the real database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, func, insert, update
from typer.testing import CliRunner

from cli.main import app
from core.customers.service import create_customer
from core.db import get_engine, session_scope
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from models import Customer, InstanceUsage, Subscription, UsageReport
from tests.conftest import pg_scalar
from tests.helpers.reports import store_report

runner = CliRunner()


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args), env={"COLUMNS": "160"})
    return result


def _seed_series(customer_id: str) -> None:
    """SEED's example: one instance, one report a day for a week, 36 → 42 of 45 devices."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope() as session:
        for days_ago, active in zip(range(6, -1, -1), [36, 37, 38, 40, 41, 42, 42], strict=True):
            report = ReportInput(
                customer_id, "production-1", active, 45, today - timedelta(days=days_ago)
            )
            store_report(session, report, license_jti=None)
        process_reports(session)


def test_usage_of_one_customer_shows_the_seed_viewer() -> None:
    with session_scope() as session:
        customer_id = create_customer(
            session,
            email="customer@example.com",
            name="Customer Name",
            company_name="Company Inc",
            plan="professional",
        ).customer_id
    _seed_series(customer_id)
    result = _invoke("usage", "--customer", customer_id)
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        f"ID:               {customer_id}",
        "Company:          Company Inc",
        "Plan:             PROFESSIONAL",
        "Device Limit:     50",
        "Usage Reports (Last 7 Days):",
        "production-1",
        "84.0%",
        "Total Reports:    7",
        "Avg Active:       39.4 devices",
        "Peak Active:      42 devices",
        "Current Active:   42 devices",
        "Current Total:    45 devices",
        "Limit:            50 devices",
        "Remaining:        8 devices",
        "WARNING: 84.0% of device limit used!",
        "Active Devices per Day",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    # The chart: one bar per day, the longest on the busiest day.
    chart = [line for line in out.splitlines() if "│" in line and line[:4].isdigit()]
    assert len(chart) == 7
    assert chart[-1].rstrip().endswith("42") and chart[0].rstrip().endswith("36")


def test_usage_of_a_quiet_customer_has_no_warning() -> None:
    with session_scope() as session:
        customer_id = create_customer(session, email="quiet@example.com").customer_id
    result = _invoke("usage", "--customer", customer_id, "--days", "30")
    assert result.exit_code == 0, result.output
    assert "No reports in this period." in result.output
    assert "Device Limit:     5" in result.output  # trial
    assert "WARNING" not in result.output


def test_usage_needs_exactly_one_target_and_a_known_customer() -> None:
    assert _invoke("usage").exit_code == 1
    assert _invoke("usage", "--all", "--customer", "cust_x").exit_code == 1
    missing = _invoke("usage", "--customer", "cust_nobody")
    assert missing.exit_code == 1 and "no customer 'cust_nobody'" in missing.output
    assert _invoke("usage", "--all", "--days", "0").exit_code == 1


def test_quarantined_reports_are_listed_and_flagged_in_the_overview() -> None:
    with session_scope() as session:
        customer_id = create_customer(session, email="stuck@example.com").customer_id
        report = ReportInput(customer_id, "stuck-node", 1, 1, datetime.now(UTC))
        report_id = store_report(session, report, license_jti=None).report_id
    assert "No quarantined usage reports." in _invoke("usage", "--quarantined").output
    # As processing leaves a report after its last failed attempt.
    with session_scope() as session:
        session.execute(
            update(UsageReport)
            .where(UsageReport.id == report_id)
            .values(attempts=5, last_error="DataError: out of range", quarantined_at=func.now())
        )
    listed = _invoke("usage", "--quarantined")
    assert listed.exit_code == 0, listed.output
    assert f"#{report_id} {customer_id} stuck-node" in listed.output
    assert "5 attempt(s)" in listed.output and "DataError: out of range" in listed.output
    overview = _invoke("usage", "--all")
    assert "1 usage report(s) quarantined: billing usage --quarantined" in overview.output
    assert _invoke("usage", "--quarantined", "--all").exit_code == 1


def test_all_lists_every_customer_with_warnings() -> None:
    with session_scope() as session:
        busy = create_customer(session, email="busy@example.com", plan="starter").customer_id
        calm = create_customer(session, email="calm@example.com").customer_id
        big = create_customer(session, email="big@example.com", plan="enterprise").customer_id
        for customer_id, active in ((busy, 8), (calm, 2), (big, 9000)):
            report = ReportInput(customer_id, "i", active, active, datetime.now(UTC))
            store_report(session, report, license_jti=None)
        process_reports(session)
    result = _invoke("usage", "--all")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Found 3 customer(s)" in out
    for customer_id in (busy, calm, big):
        assert customer_id in out
    assert "80.0%" in out and "40.0%" in out and "unlimited" in out
    assert "1 customer(s) at or above 80% of their device limit:" in out
    assert f"{busy} (busy@example.com)" in out
    assert "WARNING: 80.0% of device limit used!" in out


def _bulk_customers(count: int, start: int) -> None:
    """Many customers with subscriptions, reports and snapshots, inserted set-based."""
    now = datetime.now(UTC)
    ids = [f"cust_bulk{start + n:08d}" for n in range(count)]
    with session_scope() as session:
        session.execute(
            insert(Customer),
            [
                {"customer_id": cid, "email": f"{cid}@example.com", "usage_threshold_percent": 0}
                for cid in ids
            ],
        )
        session.execute(
            insert(Subscription),
            [{"customer_id": cid, "plan": "starter", "status": "active"} for cid in ids],
        )
        session.execute(
            insert(UsageReport),
            [
                {
                    "customer_id": cid,
                    "instance_id": f"i{k}",
                    "active_devices": n % 11,
                    "total_devices": 10 + n % 11,
                    "reported_at": now - timedelta(days=k),
                    "attempts": 1,
                    "processed_at": now,
                }
                for n, cid in enumerate(ids)
                for k in range(2)
            ],
        )
        session.execute(
            insert(InstanceUsage),
            [
                {
                    "customer_id": cid,
                    "instance_id": f"i{k}",
                    "active_devices": n % 11,
                    "total_devices": 10 + n % 11,
                    "reported_at": now - timedelta(days=k),
                    "report_id": 0,
                }
                for n, cid in enumerate(ids)
                for k in range(2)
            ],
        )


@contextmanager
def _counting_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_all_costs_the_same_number_of_queries_for_3_and_300_customers() -> None:
    _bulk_customers(3, start=0)
    with _counting_queries() as few:
        result = _invoke("usage", "--all", "--days", "7")
    assert result.exit_code == 0, result.output
    assert "Found 3 customer(s)" in result.output

    _bulk_customers(297, start=3)
    with _counting_queries() as many:
        result = _invoke("usage", "--all", "--days", "7")
    assert result.exit_code == 0, result.output
    assert "Found 300 customer(s)" in result.output
    assert "cust_bulk00000299" in result.output
    assert len(many) == len(few), (few, many)
    assert len(few) <= 6


def test_tasks_run_rollup_rolls_up_the_given_day(celery_worker) -> None:
    with session_scope() as session:
        customer_id = create_customer(session, email="roll@example.com").customer_id
        for hour, active in ((1, 2), (5, 4)):
            at = datetime(2025, 10, 20, hour, tzinfo=UTC)
            report = ReportInput(customer_id, "edge", active, 5, at)
            store_report(session, report, license_jti=None)
    result = _invoke("tasks", "run", "rollup", "--day", "2025-10-20")
    assert result.exit_code == 0, result.output
    assert "usage of 2025-10-20 rolled up: 1 instance-day row(s), 1 written" in result.output
    assert (
        pg_scalar(
            "SELECT reports || ' ' || min_active || ' ' || avg_active || ' ' || max_active "
            f"FROM usage_daily WHERE day = '{date(2025, 10, 20)}'"
        )
        == "2 2 3 4"
    )
    again = _invoke("tasks", "run", "rollup", "--day", "2025-10-20")
    assert "0 written" in again.output
    bad = _invoke("tasks", "run", "rollup", "--day", "20-10-2025")
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
