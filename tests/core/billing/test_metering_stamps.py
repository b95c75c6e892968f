"""Which invoice a meter event sent now lands on: the period Stripe states (not a month back from
its end), never before the overage item that bills it began, and never a period that will not
come (a subscription that ended, DEVICE_OVERAGE=hard): such an event is marked failed, not sent.

Stripe counts a metered item's usage from when the item (or its price) was added, and reads the
meter for a period's invoice when it finalizes it, about an hour after the period ends
(docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from core.billing.gateway import get_gateway
from core.billing.metering import runs
from core.billing.metering.days import BillingWindow, record_day, stamp_for
from core.billing.metering.estimate import estimate_overage
from core.billing.sync import apply_subscription
from core.db import session_scope
from core.settings import get_settings
from core.usage.rollups import rollup_day
from models import Customer, Subscription
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn
from tests.tasks.test_billing_metering import (
    DAY,
    START,
    meter_event_posts,
    metered,  # noqa: F401, F811 - the fixture
    on_meter,
    paying,
    report,
    rows,
)

# Stripe's period after a Jan 31 anchor: Jan 31 -> Feb 28 (a month back from Feb 28 is Jan 28).
JAN_31 = datetime(2027, 1, 31, 15, 0, tzinfo=UTC)
FEB_28 = datetime(2027, 2, 28, 15, 0, tzinfo=UTC)


def live(
    starts: datetime | None, ends: datetime | None, since: datetime | None = None
) -> BillingWindow:
    return BillingWindow(starts, ends, since or datetime(2026, 1, 1, tzinfo=UTC), live=True)


def test_a_late_day_is_carried_into_the_period_stripe_states_not_a_month_back() -> None:
    # Jan 29 and 30 lie in the invoiced period (it ended Jan 31 15:00): sent on Feb 2 they are
    # carried into the open one; a month back from Feb 28 (Jan 28) would have stamped them on
    # their own days, into the invoiced period, never billed.
    for day in (date(2027, 1, 29), date(2027, 1, 30)):
        stamp = stamp_for(day, live(JAN_31, FEB_28), datetime(2027, 2, 2, tzinfo=UTC))
        assert stamp.carried_into == JAN_31 and stamp.timestamp == int(JAN_31.timestamp())
    # Inside the open period: on its own day.
    inside = stamp_for(date(2027, 2, 1), live(JAN_31, FEB_28), datetime(2027, 2, 2, tzinfo=UTC))
    assert inside.carried_into is None


def test_the_usage_estimate_counts_from_the_period_start_stripe_states(
    stand_in: StripeStandIn,
) -> None:
    customer_id, _ = paying("estimate@example.com")
    with session_scope() as session:
        shown = estimate_overage(
            session,
            customer_id,
            plan="starter",
            status="active",
            period_ends_at=FEB_28,
            period_starts_at=JAN_31,
            window=[],
            now=datetime(2027, 2, 2, tzinfo=UTC),
        )
    assert shown.period_start == date(2027, 1, 31)


def test_the_subscription_row_stores_stripes_period_start(stand_in: StripeStandIn) -> None:
    customer_id, stripe_id = paying("period@example.com")
    item = {
        "id": "si_period",
        "price": {"id": get_settings().stripe_price_starter or "price_starter"},
        "current_period_start": int(JAN_31.timestamp()),
        "current_period_end": int(FEB_28.timestamp()),
    }
    sub = {
        "id": f"sub_{customer_id}",
        "customer": stripe_id,
        "status": "active",
        "items": {"data": [item]},
    }
    with session_scope() as session:
        customer = session.query(Customer).filter_by(customer_id=customer_id).one()
        apply_subscription(session, customer, sub, reason="test")
    with session_scope() as session:
        row = session.query(Subscription).filter_by(customer_id=customer_id).one()
        assert row.current_period_starts_at == JAN_31
        assert row.current_period_ends_at == FEB_28


def test_an_event_sent_after_the_overage_item_was_swapped_counts_from_the_new_item() -> None:
    # Upgraded on Nov 20 at 10:00 (the overage price swapped: what the old item held was billed
    # then). Nov 18's rise, sent on Nov 21, is stamped when the new item began.
    swapped = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    window = live(
        datetime(2026, 11, 4, 15, tzinfo=UTC), datetime(2026, 12, 4, 15, tzinfo=UTC), swapped
    )
    stamp = stamp_for(date(2026, 11, 18), window, datetime(2026, 11, 21, tzinfo=UTC))
    assert stamp.timestamp == int(swapped.timestamp()) and stamp.carried_into == swapped
    # A day after the swap: on its own day.
    after = stamp_for(date(2026, 11, 20), window, datetime(2026, 11, 21, tzinfo=UTC))
    assert after.carried_into is None and after.unbillable is None


def test_an_ended_subscription_sends_only_while_its_final_invoice_is_a_draft() -> None:
    began, ended = datetime(2026, 11, 4, 15, tzinfo=UTC), datetime(2026, 12, 4, 15, tzinfo=UTC)
    gone = BillingWindow(began, ended, None, live=False)
    # Half an hour after the end the final invoice is still a draft: on its own day.
    soon = stamp_for(date(2026, 12, 3), gone, ended + timedelta(minutes=30))
    assert soon.unbillable is None and soon.carried_into is None
    # Days later no period is open to carry it into: not sent.
    late = stamp_for(date(2026, 12, 3), gone, ended + timedelta(days=2))
    assert late.unbillable is not None and "period closed" in late.unbillable
    # Cancelled at once on Nov 20: the final invoice read the meter then.
    at_once = BillingWindow(
        began, ended, None, live=False, canceled_at=datetime(2026, 11, 20, tzinfo=UTC)
    )
    assert stamp_for(date(2026, 11, 18), at_once, datetime(2026, 11, 21, tzinfo=UTC)).unbillable


def _recorded_unsent(email: str) -> tuple[str, str]:
    customer_id, stripe_id = paying(email)
    report(customer_id, "edge-1", 14, START + timedelta(hours=6))  # starter: 10 -> 4 over
    with session_scope() as session:
        rollup_day(session, DAY)
        assert record_day(session, DAY).recorded == 1
    return customer_id, stripe_id


def test_an_event_of_a_cancelled_subscription_is_failed_not_sent(metered: StripeStandIn) -> None:  # noqa: F811
    customer_id, stripe_id = _recorded_unsent("ended@example.com")
    ended = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(days=1, hours=1)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(status="canceled", current_period_ends_at=ended, metered_since=None)
        )
    sending = runs.send_unsent(session_scope, get_gateway())
    (row,) = rows(customer_id)
    assert row.sent_at is None and row.failed_at is not None
    assert row.last_error is not None and "period closed" in row.last_error
    assert on_meter(metered, stripe_id) == 0 and meter_event_posts(metered) == 0
    assert sending.failed_for_good == 1


def test_device_overage_hard_stops_metering_of_customers_metered_before(
    metered: StripeStandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Recorded while overage was billed; then the operator sets DEVICE_OVERAGE=hard.
    pending_id, pending_stripe = _recorded_unsent("before@example.com")
    fresh_id, fresh_stripe = paying("fresh@example.com")  # still metered_since on its row
    report(fresh_id, "edge-1", 30, START + timedelta(hours=7))
    monkeypatch.setenv("DEVICE_OVERAGE", "hard")
    get_settings.cache_clear()
    try:
        with session_scope() as session:
            rollup_day(session, DAY)
            assert record_day(session, DAY).recorded == 0
        runs.send_unsent(session_scope, get_gateway())
    finally:
        get_settings.cache_clear()
    assert rows(fresh_id) == []
    (row,) = rows(pending_id)
    assert row.sent_at is None and row.failed_at is not None
    assert on_meter(metered, pending_stripe) == 0 and on_meter(metered, fresh_stripe) == 0
