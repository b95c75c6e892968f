"""A subscription set to cancel at a date (`cancel_at`, not `cancel_at_period_end`): a plan change
keeps it only by clearing that date, which a pending update cannot carry, so an upgrade of it is
refused instead of leaving it to end while our row says it renews. Set to end within its period,
it is "set to cancel" for sync and cancellation alike (one rule: `stripe_ends_with_period`)."""

from __future__ import annotations

import pytest

from core.billing import changes
from core.billing.entitlements import stripe_ends_with_period
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.errors import ConflictError
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    paying_customer,
    stripe_subscription,
    subscription_row,
)
from tests.stripe_stand_in import StripeStandIn


def _cancel_at_a_date(stand_in: StripeStandIn, customer_id: str, sub_id: str) -> int:
    period_end = stripe_subscription(stand_in, customer_id)["items"]["data"][0][
        "current_period_end"
    ]
    mark = len(stand_in.events)
    stand_in.client().v1.subscriptions.update(sub_id, params={"cancel_at": period_end - 86400})
    handle_inline(stand_in.events[mark:])
    return period_end - 86400


def test_an_upgrade_of_a_subscription_canceling_at_a_date_is_refused(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    cancel_at = _cancel_at_a_date(stand_in, customer_id, sub_id)

    with pytest.raises(ConflictError) as refused, session_scope() as session:
        changes.change_plan(
            session, get_gateway(), sub_id, "professional", transaction=session_scope
        )

    assert refused.value.field == "plan"
    sub = stripe_subscription(stand_in, customer_id)
    assert sub["cancel_at"] == cancel_at and sub["pending_update"] is None
    assert subscription_row(customer_id)["plan"] == "starter"


def test_keeping_a_subscription_canceling_at_a_date_clears_the_date(
    stand_in: StripeStandIn,
) -> None:
    customer_id, sub_id = paying_customer(stand_in)
    _cancel_at_a_date(stand_in, customer_id, sub_id)
    mark = len(stand_in.requests)

    with session_scope() as session:
        change = changes.change_plan(
            session, get_gateway(), sub_id, "starter", transaction=session_scope
        )

    sent = [r.params for r in stand_in.requests[mark:] if r.method == "POST"]
    assert sent and sent[-1].get("cancel_at") == "" and "cancel_at_period_end" not in sent[-1]
    assert stripe_subscription(stand_in, customer_id)["cancel_at"] is None
    assert not change.cancel_at_period_end and change.access_ends_at is None


def test_cancelling_one_set_to_cancel_at_a_date_in_its_period_keeps_the_date(
    stand_in: StripeStandIn,
) -> None:
    # Set to end within the period already: cancellation asks Stripe for nothing more (asking
    # for cancel_at_period_end would move the end to the period's end), and says it ends.
    customer_id, sub_id = paying_customer(stand_in)
    cancel_at = _cancel_at_a_date(stand_in, customer_id, sub_id)
    assert subscription_row(customer_id)["cancel_at_period_end"] is True
    mark = len(stand_in.requests)

    with session_scope() as session:
        change = changes.cancel_subscription(
            session, get_gateway(), sub_id, transaction=session_scope
        )

    assert not [r for r in stand_in.requests[mark:] if r.method in ("POST", "DELETE")]
    sub = stripe_subscription(stand_in, customer_id)
    assert sub["cancel_at"] == cancel_at and sub["status"] == "active"
    assert change.cancel_at_period_end and change.access_ends_at is not None


def test_cancelling_one_set_to_cancel_after_its_period_ends_it_with_the_period(
    stand_in: StripeStandIn,
) -> None:
    # A cancel_at past the period lets the period renew first: that is no cancellation at
    # period end, so one is asked for.
    customer_id, sub_id = paying_customer(stand_in)
    end = stripe_subscription(stand_in, customer_id)["items"]["data"][0]["current_period_end"]
    mark = len(stand_in.events)
    stand_in.client().v1.subscriptions.update(sub_id, params={"cancel_at": end + 5 * 86400})
    handle_inline(stand_in.events[mark:])
    assert subscription_row(customer_id)["cancel_at_period_end"] is False

    with session_scope() as session:
        change = changes.cancel_subscription(
            session, get_gateway(), sub_id, transaction=session_scope
        )

    sub = stripe_subscription(stand_in, customer_id)
    assert sub["cancel_at_period_end"] is True and sub["cancel_at"] == end
    assert change.cancel_at_period_end and subscription_row(customer_id)["cancel_at_period_end"]


def test_set_to_end_with_the_period_reads_both_of_stripes_ways() -> None:
    period = {"items": {"data": [{"current_period_start": 1000, "current_period_end": 2000}]}}
    # Flexible billing mode sets cancel_at to the period end with cancel_at_period_end.
    assert stripe_ends_with_period({**period, "cancel_at_period_end": True, "cancel_at": 2000})
    assert stripe_ends_with_period({**period, "cancel_at_period_end": False, "cancel_at": 1500})
    assert not stripe_ends_with_period({**period, "cancel_at_period_end": False, "cancel_at": 2001})
    assert not stripe_ends_with_period({**period, "cancel_at_period_end": False, "cancel_at": None})
    # No period known yet: a cancel_at says it ends.
    assert stripe_ends_with_period({"cancel_at_period_end": False, "cancel_at": 1500})
