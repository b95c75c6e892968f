"""A day's meter event sent after its billing period was invoiced (a recheck, a resend, an
operator's retry) is stamped into the open period and marked carried over: Stripe takes an event
stamped into an invoiced period and never bills it. Stripe finalizes a renewal's draft, reading
the meter, an hour after the period ends; OVERAGE_CARRY_OVER_AFTER_MINUTES (45) decides which
side of that hour an event sent late is stamped on."""

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
from tests.stripe_stand_in import StripeStandIn, start_stand_in
from tests.stripe_stand_in.ids import add_interval
from tests.tasks.test_billing_metering import rows

MINUTE, HOUR, DAY = 60, 3600, 86400

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


def _month_before(end: int) -> int:
    """When a monthly subscription must start for its first period to end at `end`."""
    start = end - 30 * DAY
    for _ in range(4):
        start += end - add_interval(start, "month", 1)
    assert add_interval(start, "month", 1) == end
    return start


def _subscribed(server: StripeStandIn, clock: list[float], email: str, ends: int) -> dict[str, Any]:
    """A starter customer whose first period ends at `ends`, on the plan all along: its
    customer id, subscription and period end."""
    clock[0] = _month_before(ends)
    customer_id = new_customer(email)
    handle_inline(start_checkout(server, customer_id, "starter"))
    sub = stripe_subscription(server, customer_id)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(metered_since=datetime.fromtimestamp(clock[0], UTC))
        )
    return {"customer": customer_id, "sub": sub, "ends": ends}


def test_a_late_day_is_billed_on_the_draft_within_the_margin_and_carried_after_it(
    api_client: Any,
) -> None:
    real = int(time.time())
    clock = [float(real)]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            # Both periods ended before "now" (the service's clock is the real one): one 30
            # minutes ago, inside the 45-minute margin, the other 50 minutes ago, past it.
            early = _subscribed(server, clock, "fifty@example.com", real - 50 * MINUTE)
            late = _subscribed(server, clock, "thirty@example.com", real - 30 * MINUTE)
            for each in (early, late):
                clock[0] = each["ends"]
                handle_inline(server.renew_awaiting_payment(each["sub"]["id"]))
                draft = server.client().v1.subscriptions.retrieve(each["sub"]["id"])
                each["renewal"] = draft.latest_invoice
                # The ended period's last day, reported late (devices above starter's 10).
                each["day"] = datetime.fromtimestamp(each["ends"] - DAY, UTC).date()
                at = datetime.combine(each["day"], datetime.min.time(), UTC)
                report(each["customer"], "edge-1", 14 if each is late else 13, at)
            clock[0] = real  # both drafts still wait for their hour

            for day in sorted({early["day"], late["day"]}):
                assert meter_usage.delay(day.isoformat()).get(timeout=60)["sent"] >= 1

            (on_day,) = rows(late["customer"])
            assert on_day.carried_into is None and on_day.sent_at is not None
            (carried,) = rows(early["customer"])
            assert carried.carried_into == datetime.fromtimestamp(early["ends"], UTC)
            clock[0] = real + HOUR  # past both drafts' hour: Stripe finalizes and charges them
            handle_inline(server.run_due())
            client = server.client()
            for each in (early, late):
                each["first"] = client.v1.invoices.retrieve(each["renewal"]).to_dict()
                assert each["first"]["status"] == "paid"
                sub = client.v1.subscriptions.retrieve(each["sub"]["id"])
                clock[0] = sub["items"].data[0].current_period_end + 2 * HOUR
                server.advance_period(each["sub"]["id"])
                each["second"] = client.v1.invoices.retrieve(
                    client.v1.subscriptions.retrieve(each["sub"]["id"]).latest_invoice
                ).to_dict()
                clock[0] = real + HOUR

            # 30 minutes late: inside the draft's hour, stamped on its day, billed on the draft.
            assert _usage(late["first"]) == [4] and _usage(late["second"]) == []
            # 50 minutes late: carried into the open period, billed on its invoice, not before.
            assert _usage(early["first"]) == [] and _usage(early["second"]) == [3]
            assert server.subscriptions.usage.billed(str(late["sub"]["customer"])) == 4
            assert server.subscriptions.usage.billed(str(early["sub"]["customer"])) == 3
    finally:
        server.stop()


def _usage(invoice: dict[str, Any]) -> list[int]:
    """The quantities of an invoice's metered usage lines."""
    return [
        line["quantity"]
        for line in invoice["lines"]["data"]
        if "usage" in line["description"] and line["quantity"]
    ]
