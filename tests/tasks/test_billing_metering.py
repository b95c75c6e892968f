"""Overage metering by a real worker against the Stripe stand-in's billing meter.

The tests read what reached Stripe's meter for a customer (the stand-in's meter sum); what Stripe
then bills of it depends on the subscription's items (tests/stripe_stand_in/usage_billing.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from core.billing.gateway import get_gateway
from core.billing.metering.days import identifier_for
from core.billing.metering.meters import setup_metering
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from models import Customer, OverageMeterEvent, Subscription
from tasks.billing import meter_usage
from tests.helpers.reports import store_report
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, new_customer, start_checkout, stripe_subscription
from tests.stripe_stand_in import StripeStandIn

pytestmark = pytest.mark.usefixtures("celery_worker")

# A finished day Stripe still takes events for (it refuses events older than 35 days).
DAY = datetime.now(UTC).date() - timedelta(days=2)
START = datetime.combine(DAY, time.min, tzinfo=UTC)
METER_EVENTS_PATH = "/v1/billing/meter_events"


@pytest.fixture
def metered(stand_in: StripeStandIn) -> StripeStandIn:
    setup_metering(get_gateway())
    return stand_in


def paying(email: str, plan: str = "starter", status: str = "active") -> tuple[str, str]:
    """A customer with a Stripe customer and a local row saying it pays for `plan`."""
    customer_id = new_customer(email=email)
    stripe_id = str(
        get_gateway().create_customer(customer_id=customer_id, email=email, name=None)["id"]
    )
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id=stripe_id)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(
                plan=plan,
                status=status,
                stripe_subscription_id=f"sub_{customer_id}",
                # On this plan since well before the days these tests meter.
                metered_since=START - timedelta(days=30),
            )
        )
    return customer_id, stripe_id


def report(customer_id: str, instance: str, active: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(
            session, ReportInput(customer_id, instance, active, active, at), license_jti=None
        )


def run(day: date = DAY) -> dict:
    return meter_usage.delay(day.isoformat()).get(timeout=60)


def on_meter(stand_in: StripeStandIn, stripe_id: str) -> Decimal:
    return stand_in.meters.summed(get_settings().stripe_meter_event_name, stripe_id)


def meter_event_posts(stand_in: StripeStandIn) -> int:
    return sum(1 for request in stand_in.requests if request.path == METER_EVENTS_PATH)


def rows(customer_id: str) -> list[OverageMeterEvent]:
    with session_scope() as session:
        found = session.scalars(
            select(OverageMeterEvent)
            .where(OverageMeterEvent.customer_id == customer_id)
            .order_by(OverageMeterEvent.sequence)
        ).all()
        session.expunge_all()
        return list(found)


def test_one_meter_event_per_customer_and_day_with_its_overage(metered: StripeStandIn) -> None:
    over, over_stripe = paying("over@example.com")  # starter: 10
    under, under_stripe = paying("under@example.com", plan="professional")  # 50
    trial, trial_stripe = paying("trial@example.com", plan="starter", status="trialing")
    # Peaks at different hours: 9 at 01:00 on one instance, 6 at 22:00 on the other = 15.
    report(over, "edge-1", 9, START + timedelta(hours=1))
    report(over, "edge-1", 2, START + timedelta(hours=22))
    report(over, "edge-2", 1, START + timedelta(hours=1))
    report(over, "edge-2", 6, START + timedelta(hours=22))
    report(under, "edge-1", 49, START + timedelta(hours=3))
    report(trial, "edge-1", 99, START + timedelta(hours=3))

    result = run()

    assert result["sent"] == 1 and result["unsent"] == 0
    assert result["deviceDays"] == {DAY.isoformat(): 5}
    (event,) = metered.meters.events()
    assert event["event_name"] == "zemfyre_device_overage"
    assert event["identifier"] == identifier_for(over, DAY, 0)
    assert event["payload"] == {"stripe_customer_id": over_stripe, "value": "5"}
    assert START.timestamp() <= event["timestamp"] < (START + timedelta(days=1)).timestamp()
    assert on_meter(metered, over_stripe) == 5
    assert on_meter(metered, under_stripe) == on_meter(metered, trial_stripe) == 0
    (row,) = rows(over)
    assert row.sent_at is not None and row.attempts == 1
    assert row.stripe_response and row.stripe_response["identifier"] == row.identifier


def test_a_rerun_sends_nothing_twice(metered: StripeStandIn) -> None:
    cid, stripe_id = paying("twice@example.com")
    report(cid, "edge-1", 13, START + timedelta(hours=4))
    assert run()["sent"] == 1
    posts = meter_event_posts(metered)

    again = run()

    assert (again["recorded"], again["sent"], again["unsent"]) == (0, 0, 0)
    assert meter_event_posts(metered) == posts
    assert on_meter(metered, stripe_id) == 3


def test_a_later_report_that_raises_the_day_sends_the_difference(metered: StripeStandIn) -> None:
    cid, stripe_id = paying("late@example.com")
    report(cid, "edge-1", 12, START + timedelta(hours=4))
    run()
    report(cid, "edge-2", 4, START + timedelta(hours=23))  # arrives after the day was metered

    assert run()["sent"] == 1

    assert [(row.sequence, row.value) for row in rows(cid)] == [(0, 2), (1, 4)]
    assert {event["identifier"] for event in metered.meters.events()} == {
        identifier_for(cid, DAY, 0),
        identifier_for(cid, DAY, 1),
    }
    assert on_meter(metered, stripe_id) == 6  # 12 + 4 - 10


def test_stripe_failing_is_retried_until_the_event_is_sent(metered: StripeStandIn) -> None:
    cid, stripe_id = paying("flaky@example.com")
    report(cid, "edge-1", 11, START + timedelta(hours=4))
    metered.fail_next_requests(2, status=500)

    result = run()

    assert result["sent"] == 1
    (row,) = rows(cid)
    assert row.sent_at is not None
    assert row.attempts == 3  # two refusals, then delivered
    assert on_meter(metered, stripe_id) == 1


def test_stripe_down_for_longer_leaves_the_event_for_the_next_run(
    metered: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_EVENT_MAX_RETRIES", "0")
    get_settings.cache_clear()
    cid, stripe_id = paying("down@example.com")
    report(cid, "edge-1", 16, START + timedelta(hours=4))
    metered.set_down(True)

    result = run()

    assert (result["sent"], result["unsent"]) == (0, 1)
    (row,) = rows(cid)
    assert row.sent_at is None and row.attempts == 1 and "unavailable" in (row.last_error or "")
    metered.set_down(False)
    assert run()["sent"] == 1
    assert on_meter(metered, stripe_id) == 6
    get_settings.cache_clear()


def test_an_answer_lost_after_stripe_took_the_event_is_not_billed_twice(
    metered: StripeStandIn,
) -> None:
    cid, stripe_id = paying("lost@example.com")
    report(cid, "edge-1", 14, START + timedelta(hours=4))
    # Stripe took the event, but the worker died before recording the answer: Stripe holds the
    # identifier already, our row is unsent.
    metered.client().v1.billing.meter_events.create(
        params={
            "event_name": get_settings().stripe_meter_event_name,
            "identifier": identifier_for(cid, DAY, 0),
            "payload": {"stripe_customer_id": stripe_id, "value": "4"},
            "timestamp": int((START + timedelta(hours=23)).timestamp()),
        }
    )

    assert run()["sent"] == 1

    (row,) = rows(cid)
    assert row.sent_at is not None and row.stripe_response["duplicate"] is True
    assert on_meter(metered, stripe_id) == 4


def test_enterprise_is_never_metered(metered: StripeStandIn) -> None:
    cid, stripe_id = paying("big@example.com", plan="enterprise")
    report(cid, "edge-1", 10_000, START + timedelta(hours=4))
    assert run()["recorded"] == 0
    assert metered.meters.events() == []


def test_without_stripe_keys_the_job_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        assert "skipped" in run()
    finally:
        get_settings.cache_clear()


def test_a_customer_who_paid_at_checkout_is_billed_through_its_overage_item(
    metered: StripeStandIn,
) -> None:
    customer_id = new_customer(email="paid@example.com")
    handle_inline(start_checkout(metered, customer_id, "professional"))
    sub = stripe_subscription(metered, customer_id)
    (overage_item,) = [
        item
        for item in sub["items"]["data"]
        if item["price"]["recurring"]["usage_type"] == "metered"
    ]
    (meter,) = metered.client().v1.billing.meters.list().data
    assert overage_item["price"]["recurring"]["meter"] == meter.id
    # The checkout is made now; the day metered is earlier: as if it had been paid for then.
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(metered_since=START - timedelta(days=1))
        )
    report(customer_id, "edge-1", 40, START + timedelta(hours=2))
    report(customer_id, "edge-2", 17, START + timedelta(hours=21))

    assert run()["sent"] == 1

    assert on_meter(metered, sub["customer"]) == 7  # 40 + 17 - 50


def test_the_scheduled_run_meters_yesterday_and_rechecks_the_days_before(
    metered: StripeStandIn,
) -> None:
    cid, stripe_id = paying("nightly@example.com")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    for back, active in [(0, 11), (1, 12), (2, 13), (3, 14)]:
        day_start = datetime.combine(yesterday - timedelta(days=back), time.min, tzinfo=UTC)
        report(cid, "edge-1", active, day_start + timedelta(hours=12))

    result = meter_usage.delay().get(timeout=60)

    recheck = get_settings().overage_recheck_days
    assert result["days"] == [
        (yesterday - timedelta(days=back)).isoformat() for back in range(recheck, -1, -1)
    ]
    assert on_meter(metered, stripe_id) == sum(range(1, recheck + 2))  # 1 + 2 + 3, not the 4th


def test_beat_meters_after_the_rollup_on_the_default_queue() -> None:
    from workers.beat import beat_schedule
    from workers.queues import DEFAULT, TASK_ROUTES

    schedule = beat_schedule(get_settings())
    rollup = schedule["rollup-usage-daily"]["schedule"]
    (meter,) = [job for job in schedule.values() if job["task"] == "tasks.billing.meter_usage"]
    assert (meter["schedule"].hour, rollup.hour) == ({0}, {0})
    assert min(meter["schedule"].minute) > max(rollup.minute)
    assert TASK_ROUTES["tasks.billing.meter_usage"] == {"queue": DEFAULT}
