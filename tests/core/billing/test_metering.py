"""Device overage of a day: the arithmetic, who is metered, and what a rerun records.

Real PostgreSQL, real rollup; the rows `record_day` writes are what will be sent to Stripe.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from core.billing.metering.days import (
    day_overages,
    event_timestamp,
    identifier_for,
    meterable_day,
    record_day,
)
from core.customers.service import create_customer
from core.db import session_scope
from core.errors import InvalidInputError
from core.licensing.tokens import LicenseContent, build_claims
from core.plans import get_plan
from core.usage.parsing import ReportInput
from core.usage.rollups import rollup_day
from models import Customer, OverageMeterEvent, Subscription
from tests.helpers.reports import store_report

DAY = date(2026, 11, 20)
START = datetime.combine(DAY, time.min, tzinfo=UTC)


def paying_customer(
    email: str, plan: str = "starter", status: str = "active", stripe_id: str | None = None
) -> str:
    """A customer whose local row says it pays for `plan` through Stripe."""
    with session_scope() as session:
        customer = create_customer(session, email=email, plan=plan)
        customer.stripe_customer_id = stripe_id or f"cus_{email.split('@')[0]}"
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer.customer_id)
            .values(
                plan=plan,
                status=status,
                stripe_subscription_id=f"sub_{email.split('@')[0]}",
                # On this plan since well before the days these tests meter.
                metered_since=START - timedelta(days=30),
            )
        )
        return customer.customer_id


def report(customer_id: str, instance: str, active: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(
            session,
            ReportInput(customer_id, instance, active, max(active, 1), at),
            license_jti=None,
        )


def record(day: date = DAY) -> int:
    with session_scope() as session:
        rollup_day(session, day)
        return record_day(session, day).recorded


def meter_event_rows(customer_id: str) -> list[OverageMeterEvent]:
    """The customer's recorded meter events, by day and sequence."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(OverageMeterEvent)
                .where(OverageMeterEvent.customer_id == customer_id)
                .order_by(OverageMeterEvent.day, OverageMeterEvent.sequence)
            ).all()
        )


def recorded_events(customer_id: str) -> list[tuple[int, int, str, bool]]:
    rows = meter_event_rows(customer_id)
    return [(row.sequence, row.value, row.identifier, row.sent_at is None) for row in rows]


def test_overage_is_the_sum_of_each_instances_peak_above_the_limit() -> None:
    cid = paying_customer("peaks@example.com")  # starter: 10 devices
    # Instance a peaks at 02:00 (8), instance b at 20:00 (5). At no single moment were more than
    # 10 devices active, but the day's billable devices are 8 + 5 = 13: 3 above the limit.
    report(cid, "a", 3, START + timedelta(hours=1))
    report(cid, "a", 8, START + timedelta(hours=2))
    report(cid, "a", 4, START + timedelta(hours=19))
    report(cid, "b", 2, START + timedelta(hours=2))
    report(cid, "b", 5, START + timedelta(hours=20))
    # Outside the day: not counted.
    report(cid, "a", 40, START - timedelta(seconds=1))
    report(cid, "b", 40, START + timedelta(days=1))

    with session_scope() as session:
        rollup_day(session, DAY)
        (owed,) = day_overages(session, DAY)
    assert (owed.peak_devices, owed.max_devices, owed.overage) == (13, 10, 3)

    assert record() == 1
    assert recorded_events(cid) == [(0, 3, identifier_for(cid, DAY, 0), True)]


def test_within_the_limit_nothing_is_recorded() -> None:
    cid = paying_customer("small@example.com", plan="professional")  # 50 devices
    report(cid, "a", 30, START + timedelta(hours=3))
    report(cid, "b", 20, START + timedelta(hours=4))
    assert record() == 0
    assert recorded_events(cid) == []


@pytest.mark.parametrize(
    ("plan", "status"),
    [
        ("trial", "trialing"),  # the free tier
        ("starter", "trialing"),  # a Stripe trial of a paid plan
        ("enterprise", "active"),  # unlimited
        ("starter", "canceled"),
        ("starter", "incomplete"),
        ("starter", "unpaid"),
    ],
)
def test_trials_enterprise_and_ended_subscriptions_are_never_metered(
    plan: str, status: str
) -> None:
    cid = paying_customer(f"{plan}-{status}@example.com", plan=plan, status=status)
    report(cid, "a", 500, START + timedelta(hours=5))
    assert record() == 0
    assert recorded_events(cid) == []


def test_past_due_is_still_metered() -> None:
    cid = paying_customer("late@example.com", status="past_due")
    report(cid, "a", 12, START + timedelta(hours=5))
    assert record() == 1
    assert [value for _, value, _, _ in recorded_events(cid)] == [2]


def test_customer_without_stripe_subscription_is_not_metered() -> None:
    with session_scope() as session:
        cid = create_customer(session, email="local@example.com", plan="starter").customer_id
        session.execute(
            update(Subscription).where(Subscription.customer_id == cid).values(status="active")
        )
    report(cid, "a", 30, START + timedelta(hours=5))
    assert record() == 0


def test_rerun_records_nothing_and_a_later_rise_records_only_the_difference() -> None:
    cid = paying_customer("rise@example.com")
    report(cid, "a", 14, START + timedelta(hours=6))
    assert record() == 1
    assert record() == 0  # same numbers: nothing new
    assert recorded_events(cid) == [(0, 4, identifier_for(cid, DAY, 0), True)]

    # A late report of a new instance raises the day's peak sum from 14 to 17.
    report(cid, "c", 3, START + timedelta(hours=23, minutes=59))
    assert record() == 1
    assert recorded_events(cid) == [
        (0, 4, identifier_for(cid, DAY, 0), True),
        (1, 3, identifier_for(cid, DAY, 1), True),
    ]
    # A late report below the peak changes nothing.
    report(cid, "a", 2, START + timedelta(hours=12))
    assert record() == 0
    assert sum(value for _, value, _, _ in recorded_events(cid)) == 7


def test_days_are_kept_apart() -> None:
    cid = paying_customer("days@example.com")
    report(cid, "a", 11, START + timedelta(hours=6))
    report(cid, "a", 15, START + timedelta(days=1, hours=6))
    assert record(DAY) == 1
    assert record(DAY + timedelta(days=1)) == 1
    with session_scope() as session:
        by_day = dict(
            session.execute(
                select(OverageMeterEvent.day, OverageMeterEvent.value).where(
                    OverageMeterEvent.customer_id == cid
                )
            ).all()
        )
    assert by_day == {DAY: 1, DAY + timedelta(days=1): 5}


def test_identifiers_are_stable_and_fit_stripe() -> None:
    longest = "cust_" + "x" * 59
    assert identifier_for(longest, DAY, 0) == f"zemfyre-overage-{longest}-20261120"
    assert identifier_for(longest, DAY, 12).endswith("-20261120-12")
    assert len(identifier_for(longest, DAY, 999)) <= 100


def test_event_timestamp_is_the_last_second_of_the_day() -> None:
    stamp = datetime.fromtimestamp(event_timestamp(DAY), UTC)
    assert stamp == datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)


def test_only_finished_days_young_enough_for_stripe_can_be_metered() -> None:
    now = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    assert meterable_day(date(2026, 11, 30), now) == date(2026, 11, 30)
    with pytest.raises(InvalidInputError, match="not finished yet") as unfinished:
        meterable_day(date(2026, 12, 1), now)
    assert unfinished.value.field == "day"
    with pytest.raises(InvalidInputError, match="not finished yet"):
        meterable_day(date(2026, 12, 2), now)
    with pytest.raises(InvalidInputError, match="35 days"):
        meterable_day(date(2026, 10, 1), now)


def test_stripe_customer_id_is_taken_from_the_customer() -> None:
    cid = paying_customer("ids@example.com", stripe_id="cus_RealOne")
    report(cid, "a", 11, START + timedelta(hours=6))
    record()
    with session_scope() as session:
        row = session.scalars(select(OverageMeterEvent)).one()
        customer = session.scalars(select(Customer).where(Customer.customer_id == cid)).one()
        assert (row.stripe_customer_id, row.plan) == (customer.stripe_customer_id, "starter")
        assert row.event_name == "zemfyre_device_overage"


@pytest.mark.parametrize(
    ("plan", "status", "is_trial", "revoked", "mode"),
    [
        ("starter", "active", False, False, "soft"),
        ("professional", "past_due", False, False, "soft"),
        ("starter", "trialing", True, False, "hard"),  # a Stripe trial of a paid plan
        ("trial", "trialing", True, False, "hard"),
        ("enterprise", "active", False, False, "hard"),
        ("starter", "canceled", False, False, "hard"),
        ("starter", "unpaid", False, False, "hard"),
        ("starter", "active", False, True, "hard"),
    ],
)
def test_the_license_says_whether_the_device_limit_is_soft_or_hard(
    plan: str, status: str, is_trial: bool, revoked: bool, mode: str
) -> None:
    spec = get_plan(plan)
    content = LicenseContent(
        customer_id="cust_abc",
        customer_name="Acme",
        plan=spec.plan,
        features=spec.features,
        limits=spec.limits,
        is_trial=is_trial,
        trial_ends_at=START + timedelta(days=3) if is_trial else None,
        subscription_status=status,
        current_period_ends_at=START + timedelta(days=20),
        revoked=revoked,
    )
    claims = build_claims(
        content, issued_at=START, expires_at=START + timedelta(days=1), jti="j", issuer="t"
    )
    assert claims["deviceLimit"] == mode


def test_a_day_is_carried_over_only_once_its_period_may_be_invoiced() -> None:
    from core.billing.metering.days import BillingWindow, stamp_for

    began = datetime(2026, 11, 4, 15, 0, tzinfo=UTC)
    period_ends_at = BillingWindow(
        began, datetime(2026, 12, 4, 15, 0, tzinfo=UTC), began - timedelta(days=60), live=True
    )
    before, inside = date(2026, 11, 3), date(2026, 11, 5)

    # Inside the open period, or sent while the last invoice is still a draft: on its day.
    assert stamp_for(inside, period_ends_at, began + timedelta(days=3)).carried_into is None
    assert stamp_for(before, period_ends_at, began + timedelta(minutes=30)).carried_into is None
    # Later: into the open period's first second.
    late = stamp_for(before, period_ends_at, began + timedelta(days=2))
    assert late.carried_into == began and late.timestamp == int(began.timestamp())
    # Stripe renewed and the row has not heard yet: the open period began at the stored end.
    ends = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    lagging = stamp_for(date(2026, 12, 3), period_ends_at, ends + timedelta(hours=2))
    assert lagging.carried_into == ends
