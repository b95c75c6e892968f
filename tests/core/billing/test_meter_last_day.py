"""A finished day not recorded yet when a plan change moves the overage item is recorded and sent
first, so it bills under the item and price in force when its device-days happened.

The nightly run records yesterday at 00:45 UTC. A plan change between midnight and then (or after
a run that failed) found no meter event row for the day: after the change the day was either
stamped at the new item's `metered_since` (billed at the next plan's price) or, as the new plan
was not billed all day, skipped; after an upgrade to enterprise nothing meters it at all
(docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup, "Update prices
mid-cycle": an event counts only for an item in force at its timestamp).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.billing import changes
from core.billing.gateway import get_gateway
from core.billing.metering import runs
from core.db import session_scope
from tests.api.test_usage_overage import report
from tests.core.billing.test_meter_before_swap import _metered_lines, on_starter_since_now
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import configured_for
from tests.stripe_stand_in import start_stand_in
from tests.tasks.test_billing_metering import paying, rows

STARTER_OVERAGE = "zemfyre_starter_device_overage"


def _devices(customer_id: str, day: date, active: int) -> None:
    report(customer_id, "edge-1", active, datetime.combine(day, time(12), UTC))


@pytest.mark.parametrize("plan", ["professional", "enterprise"])
def test_yesterday_not_yet_recorded_is_billed_at_the_old_price_on_a_change_at_half_past_midnight(
    plan: str,
) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    half_past_midnight = datetime.combine(today, time(0, 30), UTC).timestamp()
    clock = [half_past_midnight - 5 * 86400]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            customer_id, sub_id = on_starter_since_now(server, f"last-{plan}@example.com")
            _devices(customer_id, yesterday, 14)  # limit 10: 4 device-days
            other, _ = paying(f"other-{plan}@example.com")
            _devices(other, yesterday, 13)
            assert rows(customer_id) == []  # neither rolled up nor recorded: no run yet

            clock[0] = half_past_midnight
            with session_scope() as session:
                changes.change_plan(session, get_gateway(), sub_id, plan, transaction=session_scope)

            (row,) = rows(customer_id)
            assert (row.day, row.value, row.plan) == (yesterday, 4, "starter")
            assert row.sent_at is not None and row.carried_into is None
            assert rows(other) == []  # another customer's day is left to the nightly run

            # The 00:45 run afterwards records the other customer's day, this one's not twice.
            clock[0] = half_past_midnight + 15 * 60
            nightly = runs.meter_days(session_scope, get_gateway()).summary()
            assert (nightly["recorded"], nightly["sent"]) == (1, 1)
            assert [each.identifier for each in rows(customer_id)] == [row.identifier]
            assert [(each.day, each.value) for each in rows(other)] == [(yesterday, 3)]

            # The 4 device-days at starter's 10 cents, not professional's 7, nor lost.
            assert _metered_lines(server, sub_id) == [(STARTER_OVERAGE, 4, 40)]
    finally:
        server.stop()


def test_days_a_failed_run_left_unrecorded_are_billed_at_the_old_price() -> None:
    now = datetime.now(UTC).timestamp()
    today = datetime.fromtimestamp(now, UTC).date()
    clock = [now - 5 * 86400]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            customer_id, sub_id = on_starter_since_now(server, "last-failed@example.com")
            # Four days back, before the nightly run's recheck window (2 days), and yesterday;
            # the checkout's own day is not billed at starter (started mid-day).
            _devices(customer_id, today - timedelta(days=5), 30)
            _devices(customer_id, today - timedelta(days=4), 14)
            _devices(customer_id, today - timedelta(days=1), 12)

            clock[0] = now
            with session_scope() as session:
                changes.change_plan(
                    session, get_gateway(), sub_id, "professional", transaction=session_scope
                )

            recorded = {(row.day, row.value, row.plan) for row in rows(customer_id)}
            assert recorded == {
                (today - timedelta(days=4), 4, "starter"),
                (today - timedelta(days=1), 2, "starter"),
            }
            assert all(row.sent_at is not None for row in rows(customer_id))
            assert runs.meter_days(session_scope, get_gateway()).summary()["recorded"] == 0
            assert _metered_lines(server, sub_id) == [(STARTER_OVERAGE, 6, 60)]
    finally:
        server.stop()


def test_a_day_a_failed_run_left_behind_a_recorded_one_is_billed_before_the_item_moves() -> None:
    """Rolled up but never recorded (the run failed), then a later day recorded: the gap is
    filled too, not only the days after the last recorded one."""
    from core.billing.metering.days import record_day
    from core.usage.rollups import rollup_day

    now = datetime.now(UTC).timestamp()
    today = datetime.fromtimestamp(now, UTC).date()
    clock = [now - 10 * 86400]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        with configured_for(server):
            customer_id, sub_id = on_starter_since_now(server, "last-gap@example.com")
            gap, yesterday = today - timedelta(days=8), today - timedelta(days=1)
            _devices(customer_id, gap, 14)  # 4 device-days
            _devices(customer_id, yesterday, 12)  # 2
            with session_scope() as session:
                rollup_day(session, gap)  # its run failed after the rollup
                rollup_day(session, yesterday)
                record_day(session, yesterday, customer_id=customer_id)
            clock[0] = now
            with session_scope() as session:
                changes.change_plan(
                    session, get_gateway(), sub_id, "professional", transaction=session_scope
                )
            recorded = {(row.day, row.value, row.plan) for row in rows(customer_id)}
            assert recorded == {(gap, 4, "starter"), (yesterday, 2, "starter")}
            assert _metered_lines(server, sub_id) == [(STARTER_OVERAGE, 6, 60)]
    finally:
        server.stop()
