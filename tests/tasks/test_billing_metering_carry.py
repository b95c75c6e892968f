"""A day's meter event sent after its billing period was invoiced (a recheck, a resend, an
operator's retry) is stamped into the open period and marked carried over: Stripe takes an event
stamped into an invoiced period and never bills it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from cli.main import app
from core.db import session_scope
from models import Subscription
from tasks.billing import meter_usage
from tests.api.test_usage_overage import report
from tests.console.conftest import console_client, operator  # noqa: F401 - fixtures
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    configured_for,
    handle_inline,
    new_customer,
    start_checkout,
    stripe_subscription,
)
from tests.stripe_stand_in import start_stand_in
from tests.tasks.test_billing_metering import rows

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_a_late_day_is_carried_into_the_open_period_billed_and_shown(
    api_client: Any,
    admin_headers: dict[str, str],
    operator: Any,  # noqa: F811
) -> None:
    real = time.time()
    clock = [real - 33 * 86400]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            # Subscribed 33 days ago; the first period was invoiced 2 or 3 days ago.
            customer_id = new_customer("carried@example.com")
            handle_inline(start_checkout(server, customer_id, "starter"))
            sub = stripe_subscription(server, customer_id)
            first_end = sub["items"]["data"][0]["current_period_end"]
            clock[0] = real
            handle_inline(server.advance_period(sub["id"]))
            # A day inside the invoiced period, on the plan all day, reported late.
            day = datetime.fromtimestamp(first_end, UTC).date() - timedelta(days=1)
            with session_scope() as session:
                session.execute(
                    update(Subscription)
                    .where(Subscription.customer_id == customer_id)
                    .values(metered_since=datetime.fromtimestamp(first_end - 30 * 86400, UTC))
                )
            report(customer_id, "edge-1", 14, datetime.combine(day, datetime.min.time(), UTC))

            assert meter_usage.delay(day.isoformat()).get(timeout=60)["sent"] == 1

            (row,) = rows(customer_id)
            assert row.carried_into == datetime.fromtimestamp(first_end, UTC)
            (event,) = server.meters.events()
            assert event["timestamp"] == first_end  # the open period's first second
            clock[0] = sub["items"]["data"][0]["current_period_end"] + 31 * 86400
            server.advance_period(sub["id"])
            stripe_customer = str(sub["customer"])
            # Starter's limit is 10: the 4 device-days reach the open period's invoice.
            assert server.subscriptions.usage.billed(stripe_customer) == 4

            shown = api_client.get(f"/api/usage/{customer_id}?days=7", headers=admin_headers)
            overage = shown.json()["overage"]
            assert overage["carriedOver"] == [{"day": day.isoformat(), "billableDeviceDays": 4}]
            assert overage["periodDeviceDays"] >= 4
            printed = CliRunner().invoke(app, ["usage", "--customer", customer_id, "--days", "7"])
            assert "carried over into this period" in printed.output
            console, _ = operator
            page = console.get(f"/console/customers/{customer_id}").text
            assert "Carried over" in page and "sent after its period was invoiced" in page
    finally:
        server.stop()
