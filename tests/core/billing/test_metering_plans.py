"""The plan a metered day is billed at: the one that applied that day, never today's.

The nightly run re-checks earlier days (OVERAGE_RECHECK_DAYS) for late reports. Plan changes,
trial conversions and checkouts reach the row through Stripe's events (the stand-in), the days go
through the real rollup, and the rows `record_day` writes are what would be sent to Stripe.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, update

from core.billing.metering.days import record_day
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from core.usage.rollups import rollup_day
from models import Subscription
from tests.core.billing.test_metering import meter_event_rows
from tests.helpers.reports import store_report
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    change_plan_in_stripe,
    handle_inline,
    new_customer,
    start_checkout,
    subscription_row,
)
from tests.stripe_stand_in import StripeStandIn

TODAY = datetime.now(UTC).date()


def report(customer_id: str, instance: str, active: int, day: date) -> None:
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    with session_scope() as session:
        store_report(
            session, ReportInput(customer_id, instance, active, active, at), license_jti=None
        )


def nightly(*days: date) -> None:
    """What the nightly run records for `days` (rolled up first, as the task does)."""
    for day in days:
        with session_scope() as session:
            rollup_day(session, day)
            record_day(session, day)


def billed(customer_id: str) -> dict[date, list[tuple[int, str]]]:
    """Per day, the recorded meter events as (value, plan), in sequence."""
    found: dict[date, list[tuple[int, str]]] = {}
    for row in meter_event_rows(customer_id):
        found.setdefault(row.day, []).append((row.value, row.plan))
    return found


def test_a_downgrade_does_not_bill_earlier_days_at_the_smaller_limit(
    stand_in: StripeStandIn,
) -> None:
    customer_id = new_customer("down@example.com")
    handle_inline(start_checkout(stand_in, customer_id, "professional"))  # 50 devices
    with session_scope() as session:  # subscribed long before the days metered here
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(metered_since=datetime.now(UTC) - timedelta(days=20))
        )
    over_day, under_day = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
    report(customer_id, "edge-1", 60, over_day)
    report(customer_id, "edge-1", 30, under_day)
    nightly(over_day, under_day)
    assert billed(customer_id) == {over_day: [(10, "professional")]}

    # Today the customer moves down to starter (10 devices) ...
    handle_inline(change_plan_in_stripe(stand_in, customer_id, "starter"))
    assert subscription_row(customer_id)["plan"] == "starter"
    # ... and a late report raises the earlier day from 60 to 65 devices.
    report(customer_id, "edge-2", 5, over_day)
    nightly(over_day, under_day)

    # The rise is billed at the plan the day was billed at (5 above 60, not 55 above 10), and
    # the day within professional's limit stays unbilled (not 20 above starter's).
    assert billed(customer_id) == {over_day: [(10, "professional"), (5, "professional")]}


def test_days_of_a_trial_are_not_billed_once_it_converts(stand_in: StripeStandIn) -> None:
    customer_id = new_customer("trial@example.com")
    stripe_id = stand_in.client().v1.customers.create(params={"email": "trial@example.com"})["id"]
    mark = len(stand_in.events)
    sub = stand_in.create_subscription_directly(
        stripe_id,
        get_settings().stripe_price_starter,
        {"customerId": customer_id},
        trial_end=int(time.time()) + 3600,
    )
    handle_inline(stand_in.events[mark:])
    assert subscription_row(customer_id)["status"] == "trialing"
    trial_days = [TODAY - timedelta(days=2), TODAY - timedelta(days=1)]
    for day in trial_days:
        report(customer_id, "edge-1", 30, day)  # starter allows 10
    nightly(*trial_days)
    assert billed(customer_id) == {}

    # The trial converts into a paid period; the nightly run re-checks the trial's days.
    handle_inline(stand_in.advance_period(sub["id"]))
    assert subscription_row(customer_id)["status"] == "active"
    nightly(*trial_days)

    assert billed(customer_id) == {}


def test_days_on_the_free_tier_are_not_billed_after_a_checkout(stand_in: StripeStandIn) -> None:
    customer_id = new_customer("free@example.com")
    free_day = TODAY - timedelta(days=1)
    report(customer_id, "edge-1", 25, free_day)  # on the trial tier, before paying
    handle_inline(start_checkout(stand_in, customer_id, "starter"))
    assert subscription_row(customer_id)["status"] == "active"

    nightly(free_day)

    assert billed(customer_id) == {}


def _metered_since(customer_id: str) -> datetime | None:
    with session_scope() as session:
        return session.scalar(
            select(Subscription.metered_since).where(Subscription.customer_id == customer_id)
        )


def test_the_plan_is_billed_from_when_it_was_taken_and_kept_through_renewals(
    stand_in: StripeStandIn,
) -> None:
    customer_id = new_customer("since@example.com")
    assert _metered_since(customer_id) is None  # the free trial tier is never billed
    before = datetime.now(UTC)
    handle_inline(start_checkout(stand_in, customer_id, "starter"))
    taken = _metered_since(customer_id)
    assert taken is not None and before <= taken <= datetime.now(UTC)

    sub_id = subscription_row(customer_id)["stripe_subscription_id"]
    handle_inline(stand_in.advance_period(sub_id))  # a paid renewal: still the same plan
    assert _metered_since(customer_id) == taken

    handle_inline(change_plan_in_stripe(stand_in, customer_id, "professional"))
    changed = _metered_since(customer_id)
    assert changed is not None and changed > taken
