"""Meter events not yet sent when a plan change swaps or removes the overage item are sent first,
so they bill under the item and price in force when the device-days happened.

Stripe bills a removed or swapped metered item's usage so far with that update (flexible billing
mode); an event sent afterwards counts only for the new item, from when it began
(docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup, "Update prices
mid-cycle"): sent late, a starter day would be billed at professional's price, or by nothing
after an upgrade to enterprise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from core.billing import changes
from core.billing.gateway import StripeUnavailableError, get_gateway
from core.billing.metering import runs
from core.billing.metering.days import record_day
from core.db import session_scope
from core.usage.rollups import rollup_day
from models import Subscription
from tests.api.test_usage_overage import report
from tests.core.billing.test_changes_overage import _enterprise_price
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    configured_for,
    handle_inline,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_invoices,
)
from tests.stripe_stand_in import StripeStandIn, start_stand_in
from tests.tasks.test_billing_metering import rows


def billed_overage(server: StripeStandIn, sub_id: str) -> list[tuple[str, int, int]]:
    """The overage billed on the subscription's invoices so far (void ones left out): (price
    lookup key, device-days, cents) per line."""
    found = []
    for invoice in subscription_invoices(server, sub_id):
        for line in invoice["lines"]["data"] if invoice["status"] != "void" else []:
            price = server.client().v1.prices.retrieve(line["pricing"]["price_details"]["price"])
            metered = price.recurring and price.recurring.usage_type == "metered"
            if metered and line["quantity"]:
                found.append((str(price.lookup_key), int(line["quantity"]), int(line["amount"])))
    return sorted(found)


def _metered_lines(server: StripeStandIn, sub_id: str) -> list[tuple[str, int, int]]:
    """The overage billed up to the subscription's renewal (the upgrade's own invoice
    included)."""
    server.advance_period(sub_id)
    return billed_overage(server, sub_id)


def upgrade_bills_the_day_at_starters_price(server: StripeStandIn, sub_id: str) -> None:
    """Starter -> professional: the unsent day's 4 device-days billed at starter's 10 cents."""
    with session_scope() as session:
        changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )
    assert _metered_lines(server, sub_id) == [("zemfyre_starter_device_overage", 4, 40)]


def on_starter_since_now(server: StripeStandIn, email: str) -> tuple[str, str]:
    """Checked out on starter at the stand-in's clock, metered since then (enterprise's price
    made too); the customer and the Stripe subscription."""
    _enterprise_price(server)
    customer_id = new_customer(email)
    handle_inline(start_checkout(server, customer_id, "starter"))
    sub_id = str(stripe_subscription(server, customer_id)["id"])
    began = datetime.fromtimestamp(server.store.now(), UTC)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(metered_since=began)
        )
    return customer_id, sub_id


def _starter_with_an_unsent_day(server: StripeStandIn, plan: str) -> tuple[str, str]:
    """On starter for 5 days (the stand-in's clock was 5 days back at checkout, now is now);
    yesterday's 14 devices (limit 10) recorded, not yet sent."""
    customer_id, sub_id = on_starter_since_now(server, f"swap-{plan}@example.com")
    day: date = datetime.now(UTC).date() - timedelta(days=1)
    report(customer_id, "edge-1", 14, datetime.combine(day, datetime.min.time(), UTC))
    with session_scope() as session:
        rollup_day(session, day)
        record_day(session, day)
    (row,) = rows(customer_id)
    assert row.sent_at is None
    return customer_id, sub_id


@contextmanager
def an_unsent_starter_day(plan: str) -> Iterator[tuple[StripeStandIn, str, str]]:
    """A stand-in whose clock was 5 days back at checkout and is now now, serving a customer
    on starter with yesterday's overage recorded, not yet sent: (server, customer, subscription)."""
    real = time.time()
    clock = [real - 5 * 86400]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            customer_id, sub_id = _starter_with_an_unsent_day(server, plan)
            clock[0] = real
            yield server, customer_id, sub_id
    finally:
        server.stop()


@pytest.mark.parametrize("plan", ["professional", "enterprise"])
def test_unsent_overage_is_billed_at_the_old_price_before_the_item_moves(plan: str) -> None:
    with an_unsent_starter_day(plan) as (server, customer_id, sub_id):
        with session_scope() as session:
            changes.change_plan(session, get_gateway(), sub_id, plan, transaction=session_scope)
        runs.send_unsent(session_scope, get_gateway())  # what the hourly resend would do after it

        (row,) = rows(customer_id)
        assert row.sent_at is not None and row.carried_into is None
        # The 4 device-days at starter's 10 cents, not professional's 7, nor lost.
        assert _metered_lines(server, sub_id) == [("zemfyre_starter_device_overage", 4, 40)]


def test_a_plan_change_waits_while_stripe_does_not_take_the_unsent_overage() -> None:
    with an_unsent_starter_day("professional") as (server, customer_id, sub_id):
        server.fail_next_requests(20, 503, path_prefix="/v1/billing/meter_events")

        with session_scope() as session, pytest.raises(StripeUnavailableError):
            changes.change_plan(
                session, get_gateway(), sub_id, "professional", transaction=session_scope
            )

        # Nothing changed: still starter, its overage item in place, the day unsent.
        prices = [
            item["price"]["lookup_key"]
            for item in stripe_subscription(server, customer_id)["items"]["data"]
        ]
        assert sorted(prices) == ["zemfyre_starter_device_overage", "zemfyre_starter_monthly"]
        (row,) = rows(customer_id)
        assert row.sent_at is None
        server.fail_next_requests(0)
        upgrade_bills_the_day_at_starters_price(server, sub_id)
