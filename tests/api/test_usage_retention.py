"""The usage viewer over a window that reaches past USAGE_REPORT_RETENTION_DAYS: the pruned
days' figures come from the daily rollup, their reports are not listed, and it says so."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from typer.testing import CliRunner

from cli.main import app
from core.customers.service import create_customer
from core.db import session_scope
from core.retention.pruning import prune
from core.settings import get_settings
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from core.usage.rollups import begin_rollup, rollup_day
from tests.helpers.reports import store_report

RETENTION = get_settings().usage_report_retention_days
TODAY = datetime.now(UTC).date()
PRUNED_DAY = TODAY - timedelta(days=RETENTION + 2)


def _customer_with_a_pruned_day() -> str:
    with session_scope() as session:
        customer_id = create_customer(session, email="viewer@example.com").customer_id
        for hour, active in ((1, 30), (2, 34)):
            at = datetime.combine(PRUNED_DAY, time(hour), tzinfo=UTC)
            store_report(session, ReportInput(customer_id, "i-1", active, 40, at), license_jti=None)
        now = datetime.now(UTC) - timedelta(minutes=1)
        store_report(session, ReportInput(customer_id, "i-1", 12, 40, now), license_jti=None)
        process_reports(session)
        begin_rollup(session, PRUNED_DAY)
        rollup_day(session, PRUNED_DAY)
    assert prune(session_scope)[0].rows == 2
    return customer_id


def test_a_window_past_retention_reads_the_rollup_and_says_so(
    api_client: Any, admin_headers: dict[str, str]
) -> None:
    customer_id = _customer_with_a_pruned_day()

    wide = api_client.get(f"/api/usage/{customer_id}?days={RETENTION + 10}", headers=admin_headers)
    assert wide.status_code == 200, wide.text
    body = wide.json()
    kept_since = TODAY - timedelta(days=RETENTION)
    assert body["retention"]["keptDays"] == RETENTION
    assert body["retention"]["keptSince"].startswith(kept_since.isoformat())
    assert body["retention"]["windowReachesPast"] is True
    assert f"reports before {kept_since.isoformat()} are pruned" in body["retention"]["note"]
    # The pruned day still counts, from its rollup; only the kept report is listed.
    assert {"day": PRUNED_DAY.isoformat(), "activeDevices": 34} in body["daily"]
    assert body["summary"]["totalReports"] == 3
    assert body["summary"]["peakActive"] == 34
    assert [report["activeDevices"] for report in body["reports"]] == [12]

    narrow = api_client.get(f"/api/usage/{customer_id}?days=7", headers=admin_headers).json()
    assert narrow["retention"]["windowReachesPast"] is False
    assert narrow["retention"]["note"] is None

    shown = CliRunner().invoke(
        app, ["usage", "--customer", customer_id, "--days", str(RETENTION + 10)]
    )
    assert shown.exit_code == 0, shown.output
    assert f"Note: raw reports are kept {RETENTION} days" in " ".join(shown.output.split())
