"""Current devices count the instances that still report, not those that went quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.customers.service import create_customer
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from core.usage.processing import process_reports
from core.viewer.overview import all_customers_usage
from core.viewer.queries import customer_usage
from tests.helpers.reports import store_report

NOW = datetime.now(UTC)


def _customer_with_a_quiet_instance() -> str:
    with session_scope() as session:
        customer_id = create_customer(session, email="quiet@example.com", plan="starter")
        customer_id = customer_id.customer_id
        # Switched off four days ago (its last report), and one that reports today.
        for instance, active, at in (("old", 7, NOW - timedelta(days=4)), ("new", 2, NOW)):
            report = ReportInput(customer_id, instance, active, 9, at)
            store_report(session, report, license_jti=None)
    with session_scope() as session:
        process_reports(session)
    return customer_id


def _current(customer_id: str) -> tuple[int, int, int, int]:
    with session_scope() as session:
        summary = customer_usage(session, customer_id, days=7).summary
        line = next(
            row for row in all_customers_usage(session, days=7) if row.customer_id == customer_id
        )
    assert (line.current_active, line.current_total) == (summary.current_active,
                                                         summary.current_total)  # fmt: skip
    return summary.current_active, summary.current_total, summary.instances, line.current_active


def test_an_instance_silent_for_the_stale_days_no_longer_counts() -> None:
    customer_id = _customer_with_a_quiet_instance()
    assert _current(customer_id) == (2, 9, 1, 2)


def test_the_stale_days_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "usage_instance_stale_days", 5)
    customer_id = _customer_with_a_quiet_instance()
    assert _current(customer_id) == (9, 18, 2, 9)
