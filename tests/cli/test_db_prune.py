"""`billing db prune [--dry-run]` prints what goes per table; a retention shorter than metering
needs stops every process at start-up with one clear line."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from core.customers.service import create_customer
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from core.usage.rollups import begin_rollup, rollup_day
from models import AuditEntry, UsageReport
from tests.helpers.processes import PROJECT_ROOT, billing_command
from tests.helpers.reports import store_report

runner = CliRunner()


def _reports() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(UsageReport)) or 0)


def test_dry_run_prints_what_would_go_per_table_then_prune_removes_it() -> None:
    old_day = datetime.now(UTC).date() - timedelta(
        days=get_settings().usage_report_retention_days + 3
    )
    with session_scope() as session:
        customer_id = create_customer(session, email="cli@example.com").customer_id
        for hour in range(4):
            at = datetime.combine(old_day, time(hour), tzinfo=UTC)
            store_report(session, ReportInput(customer_id, "i-1", hour, 9, at), license_jti=None)
        store_report(
            session, ReportInput(customer_id, "i-1", 1, 9, datetime.now(UTC)), license_jti=None
        )
        process_reports(session)
        begin_rollup(session, old_day)
        rollup_day(session, old_day)

    dry = runner.invoke(app, ["db", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "usage_reports: would remove 4 " in dry.output
    assert "stripe_events: would remove 0 " in dry.output
    assert _reports() == 5

    done = runner.invoke(app, ["db", "prune"])
    assert done.exit_code == 0, done.output
    assert "usage_reports: removed 4 " in done.output
    assert _reports() == 1
    again = runner.invoke(app, ["db", "prune"])
    assert "usage_reports: removed 0 " in again.output
    # What went is audited once, as the operator who ran it; the rerun removed nothing.
    with session_scope() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "retention.prune")
        ).all()
    assert [(e.action, e.actor.startswith("cli:"), e.after) for e in entries] == [
        ("retention.prune", True, {"table": "usage_reports", "rows": 4})
    ]


@pytest.mark.parametrize("command", [("db", "prune", "--dry-run"), ("api",), ("worker",)])
def test_a_retention_shorter_than_metering_needs_is_refused_at_start_up(
    command: tuple[str, ...],
) -> None:
    minimum = get_settings().minimum_usage_report_retention_days
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env["USAGE_REPORT_RETENTION_DAYS"] = str(minimum - 1)
    result = subprocess.run(
        billing_command(*command), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"USAGE_REPORT_RETENTION_DAYS={minimum - 1} is too short: it must be at least " in (
        result.stderr
    )
    assert f"at least {minimum} " in result.stderr
    assert "Traceback" not in result.stderr
