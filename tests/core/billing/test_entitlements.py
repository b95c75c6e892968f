"""Money follows payment: what a license grants through a renewal whose charge fails, retries
that are paid or give up, and paused collection. Stripe's events reach the service as signed
webhooks and a real worker handles them (docs/stripe.md, "What each subscription state grants")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from core.db import session_scope
from core.settings import get_settings
from models import Subscription
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    deliver_all,
    license_claims,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_row,
    wait_for_events,
)


def _deliver(api_client: Any, events: list[dict[str, Any]], seed: int) -> None:
    deliver_all(api_client, events, seed=seed)
    wait_for_events([e["id"] for e in events])


def _period_end(stand_in: Any, customer_id: str) -> datetime:
    item = stripe_subscription(stand_in, customer_id)["items"]["data"][0]
    return datetime.fromtimestamp(item["current_period_end"], UTC)


def _exp(customer_id: str) -> datetime:
    return datetime.fromtimestamp(license_claims(customer_id)["exp"], UTC)


def _subscribed(stand_in: Any, api_client: Any) -> tuple[str, str, datetime]:
    customer_id = new_customer()
    _deliver(api_client, start_checkout(stand_in, customer_id), seed=1)
    paid_end = _period_end(stand_in, customer_id)
    assert _exp(customer_id) == paid_end + timedelta(days=get_settings().license_grace_days)
    return customer_id, stripe_subscription(stand_in, customer_id)["id"], paid_end


def test_failed_renewal_keeps_the_paid_period_then_a_paid_retry_grants_the_next(
    stand_in, api_client, celery_worker
):
    customer_id, sub_id, paid_end = _subscribed(stand_in, api_client)
    grace = timedelta(days=get_settings().license_past_due_grace_days)

    # Stripe moves the period forward about an hour before it charges: nothing is paid yet.
    _deliver(api_client, stand_in.renew_awaiting_payment(sub_id), seed=2)
    assert _period_end(stand_in, customer_id) > paid_end
    claims = license_claims(customer_id)
    assert claims["subscription"]["status"] == "active"
    # The license says the paid-through date, not the period Stripe has not been paid for.
    said = claims["subscription"]["currentPeriodEndsAt"].replace("Z", "+00:00")
    assert datetime.fromisoformat(said) == paid_end
    assert _exp(customer_id) == paid_end + timedelta(days=get_settings().license_grace_days)

    # The charge fails: past_due keeps the license to the paid-through date plus the grace.
    _deliver(api_client, stand_in.fail_payment(sub_id), seed=3)
    row = subscription_row(customer_id)
    assert row["status"] == "past_due"
    assert license_claims(customer_id)["subscription"]["status"] == "past_due"
    assert _exp(customer_id) == paid_end + grace

    # A retry is paid: the new period is granted.
    _deliver(api_client, stand_in.pay_invoice(sub_id), seed=4)
    new_end = _period_end(stand_in, customer_id)
    assert subscription_row(customer_id)["status"] == "active"
    assert license_claims(customer_id)["subscription"]["status"] == "active"
    assert _exp(customer_id) == new_end + timedelta(days=get_settings().license_grace_days)


def test_retries_that_give_up_end_the_license(stand_in, api_client, celery_worker):
    customer_id, sub_id, paid_end = _subscribed(stand_in, api_client)
    _deliver(api_client, stand_in.fail_payment(sub_id), seed=5)
    assert _exp(customer_id) == paid_end + timedelta(
        days=get_settings().license_past_due_grace_days
    )

    # Smart Retries exhausted, "mark the subscription unpaid": the license ends as issued.
    _deliver(api_client, stand_in.exhaust_retries(sub_id, "unpaid"), seed=6)
    claims = license_claims(customer_id)
    assert subscription_row(customer_id)["status"] == "unpaid"
    assert claims["subscription"]["status"] == "unpaid"
    assert claims["exp"] <= claims["iat"] + 1


def test_retries_that_cancel_end_the_license(stand_in, api_client, celery_worker):
    customer_id, sub_id, paid_end = _subscribed(stand_in, api_client)
    _deliver(api_client, stand_in.fail_payment(sub_id), seed=7)
    assert license_claims(customer_id)["subscription"]["status"] == "past_due"
    assert _exp(customer_id) == paid_end + timedelta(
        days=get_settings().license_past_due_grace_days
    )
    _deliver(api_client, stand_in.exhaust_retries(sub_id, "canceled"), seed=8)
    claims = license_claims(customer_id)
    assert subscription_row(customer_id)["status"] == "canceled"
    assert claims["subscription"]["status"] == "canceled"
    assert claims["exp"] <= claims["iat"] + 1


def test_paused_collection_grants_nothing_until_resumed(stand_in, api_client, celery_worker):
    customer_id, sub_id, paid_end = _subscribed(stand_in, api_client)
    client = stand_in.client()

    mark = len(stand_in.events)
    client.v1.subscriptions.update(sub_id, params={"pause_collection": {"behavior": "void"}})
    _deliver(api_client, stand_in.events[mark:], seed=9)
    claims = license_claims(customer_id)
    assert subscription_row(customer_id)["status"] == "active"  # Stripe's status is unchanged
    assert claims["subscription"]["status"] == "paused"
    assert claims["exp"] <= claims["iat"] + 1

    mark = len(stand_in.events)
    client.v1.subscriptions.update(sub_id, params={"pause_collection": ""})
    _deliver(api_client, stand_in.events[mark:], seed=10)
    assert license_claims(customer_id)["subscription"]["status"] == "active"
    assert _exp(customer_id) == paid_end + timedelta(days=get_settings().license_grace_days)


def _on_stripe_trial(stand_in: Any, api_client: Any, seed: int) -> tuple[str, str, datetime]:
    """A customer on a 14-day Stripe trial of starter (made in Stripe, e.g. the dashboard)."""
    customer_id = new_customer()
    client = stand_in.client()
    stripe_customer = client.v1.customers.create(params={"email": "trial@example.com"})["id"]
    mark = len(stand_in.events)
    trial_end = int(datetime.now(UTC).timestamp()) + 14 * 86400
    sub = stand_in.create_subscription_directly(
        stripe_customer,
        get_settings().stripe_price_starter,
        {"customerId": customer_id},
        trial_end=trial_end,
    )
    _deliver(api_client, stand_in.events[mark:], seed=seed)
    claims = license_claims(customer_id)
    assert subscription_row(customer_id)["status"] == "trialing"
    assert claims["trial"]["isTrialMode"] is True
    assert _exp(customer_id) == datetime.fromtimestamp(trial_end, UTC)  # no grace on a trial
    return customer_id, sub["id"], datetime.fromtimestamp(trial_end, UTC)


def _said_period_end(customer_id: str) -> datetime:
    said = license_claims(customer_id)["subscription"]["currentPeriodEndsAt"]
    return datetime.fromisoformat(said.replace("Z", "+00:00"))


def test_a_trial_whose_first_charge_fails_gets_no_grace(stand_in, api_client, celery_worker):
    customer_id, sub_id, trial_end = _on_stripe_trial(stand_in, api_client, seed=11)
    trial_start = stripe_subscription(stand_in, customer_id)["trial_start"]

    # The trial converts and its first charge fails: nothing was ever paid, so the license ends
    # (saying past_due), rather than running a past_due grace from the trial's end.
    _deliver(api_client, stand_in.fail_payment(sub_id), seed=12)
    claims = license_claims(customer_id)
    assert subscription_row(customer_id)["status"] == "past_due"
    assert claims["subscription"]["status"] == "past_due"
    assert claims["exp"] <= claims["iat"] + 1
    # Paid through nothing: the trial's start.
    assert _said_period_end(customer_id) == datetime.fromtimestamp(trial_start, UTC)
    assert _exp(customer_id) < trial_end

    # A retry is paid: the paid period is granted, with the ordinary grace.
    _deliver(api_client, stand_in.pay_invoice(sub_id), seed=13)
    assert license_claims(customer_id)["subscription"]["status"] == "active"
    assert _exp(customer_id) == _period_end(stand_in, customer_id) + timedelta(
        days=get_settings().license_grace_days
    )


def test_a_row_that_counted_its_trial_as_paid_gets_no_grace_either(
    stand_in, api_client, celery_worker
):
    customer_id, sub_id, trial_end = _on_stripe_trial(stand_in, api_client, seed=14)
    # Synced before trial time stopped counting as paid: paid through the trial's end.
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(paid_through_at=trial_end)
        )

    _deliver(api_client, stand_in.fail_payment(sub_id), seed=15)

    claims = license_claims(customer_id)
    assert claims["subscription"]["status"] == "past_due"
    assert claims["exp"] <= claims["iat"] + 1


def test_a_converted_trial_keeps_its_license_while_the_first_charge_is_under_way(
    stand_in, api_client, celery_worker
):
    customer_id, sub_id, trial_end = _on_stripe_trial(stand_in, api_client, seed=16)
    grace = timedelta(days=get_settings().license_grace_days)

    # Stripe starts the first paid period about an hour before it charges it.
    _deliver(api_client, stand_in.renew_awaiting_payment(sub_id), seed=17)
    assert license_claims(customer_id)["subscription"]["status"] == "active"
    assert _exp(customer_id) == trial_end + grace

    # The charge fails: the trial's end is no paid-through date, so no past_due grace runs on it.
    _deliver(api_client, stand_in.fail_payment(sub_id), seed=18)
    claims = license_claims(customer_id)
    assert claims["subscription"]["status"] == "past_due"
    assert claims["exp"] <= claims["iat"] + 1
