"""`billing stripe setup` prints the overage lines; `billing tasks run meter-usage --day`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn

runner = CliRunner()


def test_setup_prints_the_meter_and_overage_price_lines(stand_in: StripeStandIn) -> None:
    result = runner.invoke(app, ["stripe", "setup"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "STRIPE_METER_EVENT_NAME=zemfyre_device_overage" in lines
    for plan in ("STARTER", "PROFESSIONAL"):
        line = next(x for x in lines if x.startswith(f"STRIPE_OVERAGE_PRICE_{plan}="))
        assert line.split("=", 1)[1].startswith("price_")
    assert "$0.10 per device-day over the limit" in result.output
    assert "$0.07 per device-day over the limit" in result.output
    assert not any(x.startswith("STRIPE_OVERAGE_PRICE_ENTERPRISE") for x in lines)


@pytest.mark.parametrize("days_ahead", [0, 1])
def test_a_day_not_finished_yet_is_refused(days_ahead: int) -> None:
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).date().isoformat()
    result = runner.invoke(app, ["tasks", "run", "meter-usage", "--day", day])
    assert result.exit_code == 1
    assert f"day {day} is not finished yet" in result.output


def test_a_malformed_day_is_refused() -> None:
    result = runner.invoke(app, ["tasks", "run", "meter-usage", "--day", "yesterday"])
    assert result.exit_code == 1
    assert "day must be YYYY-MM-DD" in result.output


@pytest.mark.usefixtures("celery_worker")
def test_a_finished_day_is_metered_by_a_worker(stand_in: StripeStandIn) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    result = runner.invoke(app, ["tasks", "run", "meter-usage", "--day", day])
    assert result.exit_code == 0, result.output
    assert f"overage of {day}: 0 billable device-day(s)" in result.output


def _paying_starter(email: str) -> str:
    from sqlalchemy import update

    from core.customers.service import create_customer
    from core.db import session_scope
    from models import Subscription

    with session_scope() as session:
        cid = create_customer(session, email=email, plan="starter").customer_id
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == cid)
            .values(
                status="active",
                stripe_subscription_id=f"sub_{cid}",
                current_period_ends_at=datetime.now(UTC) + timedelta(days=20),
            )
        )
    return cid


def _report(cid: str, instance: str, active: int, at: datetime) -> None:
    from core.db import session_scope
    from core.usage.parsing import ReportInput
    from tests.helpers.reports import store_report

    with session_scope() as session:
        store_report(session, ReportInput(cid, instance, active, active, at), license_jti=None)


def test_usage_viewer_shows_the_overage_and_all_customers_an_overage_column() -> None:
    cid = _paying_starter("overage-cli@example.com")
    now = datetime.now(UTC)
    _report(cid, "a", 12, now - timedelta(minutes=10))
    _report(cid, "b", 3, now - timedelta(minutes=9))  # today: 15, 5 above 10

    one = runner.invoke(app, ["usage", "--customer", cid, "--days", "1"])
    every = runner.invoke(app, ["usage", "--all", "--days", "1"])

    assert one.exit_code == 0, one.output
    assert "Device Overage ($0.10 per device-day above 10 devices)" in one.output
    assert f"{now:%Y-%m-%d}" in one.output and "5 device-day(s)" in one.output
    assert "$0.50 (next invoice, today so far)" in one.output
    assert every.exit_code == 0, every.output
    header = next(line for line in every.output.splitlines() if "Customer ID" in line)
    assert "Overage" in header
    row = next(line for line in every.output.splitlines() if cid in line)
    assert row.split()[-2] == "5"  # the column before the sparkline
