"""Stripe event tasks on a real worker: order, duplicates, retries, failures, the sweeper and
the reconciliation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.billing import changes, handlers, inbox
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.settings import get_settings
from models import StripeEvent, utcnow
from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    cancel_at_period_end_in_stripe,
    change_plan_in_stripe,
    deliver,
    deliver_all,
    handle_inline,
    license_claims,
    license_count,
    local_subscription_state,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_row,
    wait_for_events,
)


def run_lifecycle(stand_in: Any, client: Any, email: str, seed: int) -> tuple[str, list[int]]:
    """Checkout, a plan change, a failed then recovered payment and a cancel at period end, each
    phase's events delivered twice in a shuffled order; the license count after each phase."""
    customer_id = new_customer(email=email)
    counts = [license_count(customer_id)]
    phases: list[Any] = [
        lambda: start_checkout(stand_in, customer_id),
        lambda: change_plan_in_stripe(stand_in, customer_id, "professional"),
        lambda: stand_in.fail_payment(stripe_subscription(stand_in, customer_id)["id"]),
        lambda: stand_in.pay_invoice(stripe_subscription(stand_in, customer_id)["id"]),
        lambda: cancel_at_period_end_in_stripe(stand_in, customer_id),
    ]
    for index, phase in enumerate(phases):
        events = phase()
        assert events
        deliver_all(client, events, seed=seed * 10 + index)
        wait_for_events([e["id"] for e in events])
        counts.append(license_count(customer_id))
    return customer_id, counts


def test_duplicates_and_shuffled_orders_end_in_the_same_state(stand_in, api_client, celery_worker):
    results = [
        run_lifecycle(stand_in, api_client, f"buyer{seed}@example.com", seed) for seed in (1, 2, 3)
    ]
    states = [local_subscription_state(customer_id) for customer_id, _ in results]
    for state in states:
        state.pop("period_end")
        state.pop("license_period_end")
    assert states[0] == states[1] == states[2]
    assert states[0] == {
        "plan": "professional",
        "status": "active",
        "cancel_at_period_end": True,
        "license_plan": "professional",
        "license_status": "active",
    }
    # One reissue per real change: paid starter, professional, past_due (new period), active
    # again, set to cancel at period end (the license then ends with the period: no grace).
    for _, counts in results:
        assert counts == [1, 2, 3, 4, 5, 6]


def test_all_events_at_once_in_any_order_give_the_final_state(stand_in, api_client, celery_worker):
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    events += change_plan_in_stripe(stand_in, customer_id, "professional")
    events += cancel_at_period_end_in_stripe(stand_in, customer_id)
    # The oldest events last: each still re-reads Stripe, so none can roll the state back.
    for event in sorted(events, key=lambda e: e["created"], reverse=True) * 2:
        assert deliver(api_client, event).status_code == 200
    wait_for_events([e["id"] for e in events])
    state = local_subscription_state(customer_id)
    assert (state["plan"], state["status"], state["cancel_at_period_end"]) == (
        "professional",
        "active",
        True,
    )
    assert license_count(customer_id) == 2  # trial, then the one state Stripe reports


def test_failing_handler_is_retried_and_succeeds_once_stripe_answers(
    stand_in, api_client, celery_worker
):
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    stand_in.set_down(True)
    assert deliver(api_client, completed).status_code == 200
    wait_until(lambda: (pg_scalar("SELECT attempts FROM stripe_events") or 0) >= 2, timeout=30)
    assert pg_scalar("SELECT status FROM stripe_events") == "pending"
    assert "unavailable" in str(pg_scalar("SELECT last_error FROM stripe_events")).lower()
    assert subscription_row(customer_id)["plan"] == "trial"

    stand_in.set_down(False)
    wait_for_events([completed["id"]])
    assert pg_scalar("SELECT last_error FROM stripe_events") is None
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    assert license_claims(customer_id)["plan"] == "starter"


def test_event_that_keeps_failing_stays_failed_for_an_operator(
    stand_in, api_client, celery_worker, monkeypatch
):
    monkeypatch.setenv("STRIPE_EVENT_MAX_RETRIES", "1")
    get_settings.cache_clear()
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    stand_in.set_down(True)
    deliver(api_client, completed)
    wait_until(lambda: pg_scalar("SELECT status FROM stripe_events") == "failed", timeout=30)
    assert pg_scalar("SELECT attempts FROM stripe_events") == 2
    assert "503" in str(pg_scalar("SELECT last_error FROM stripe_events"))

    # Once Stripe is back, a replay handles it.
    stand_in.set_down(False)
    with session_scope() as session:
        outcome = handlers.process_event(session, completed["id"], force=True)
    assert outcome.status == "processed"
    assert pg_scalar("SELECT status FROM stripe_events") == "processed"
    assert subscription_row(customer_id)["plan"] == "starter"


def test_event_of_an_unknown_customer_fails_without_retrying(stand_in, api_client, celery_worker):
    client = stand_in.client()
    stranger = client.v1.customers.create(params={"email": "stranger@example.com"})
    sub = stand_in.create_subscription_directly(stranger["id"], get_settings().stripe_price_starter)
    created = next(e for e in stand_in.events if e["type"] == "customer.subscription.created")
    assert created["data"]["object"]["id"] == sub["id"]
    deliver(api_client, created)
    wait_until(lambda: pg_scalar("SELECT status FROM stripe_events") == "failed")
    assert pg_scalar("SELECT attempts FROM stripe_events") == 1
    assert "no local customer" in str(pg_scalar("SELECT last_error FROM stripe_events"))


def test_late_events_do_not_undo_a_deactivation(stand_in, api_client, celery_worker):
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id, plan="professional")
    deliver_all(api_client, events, seed=5)
    wait_for_events([e["id"] for e in events])
    with session_scope() as session:
        done = changes.deactivate_customer(
            session, get_gateway(), customer_id, immediately=True, transaction=session_scope
        )
    assert done.stripe_canceled and done.previous_plan == "professional"
    assert stripe_sub_of_any(stand_in, customer_id)["status"] == "canceled"
    trial_state = subscription_row(customer_id)
    assert trial_state["plan"] == "trial"
    count = license_count(customer_id)

    # Every event again, including the cancellation's, in any order: still on the trial tier.
    all_events = stand_in.events
    with session_scope() as session:
        session.query(StripeEvent).delete()
    deliver_all(api_client, all_events, seed=6)
    wait_for_events([e["id"] for e in all_events])
    assert subscription_row(customer_id)["plan"] == "trial"
    assert license_claims(customer_id)["plan"] == "trial"
    assert license_count(customer_id) == count

    # Deactivating again does nothing more.
    with session_scope() as session:
        again = changes.deactivate_customer(
            session, get_gateway(), customer_id, immediately=True, transaction=session_scope
        )
    assert not again.stripe_canceled and not again.license_reissued


def stripe_sub_of_any(stand_in: Any, customer_id: str) -> dict:
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    subs = stand_in.client().v1.subscriptions.list(
        params={"customer": stripe_customer, "status": "all"}
    )
    return subs["data"][0].to_dict()


def test_sweeper_enqueues_events_whose_task_never_ran(stand_in, celery_worker):
    from tasks.billing import sweep_events

    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    with session_scope() as session:
        for event in events:
            inbox.store_event(session, event)  # stored, never enqueued (broker was down)
    assert sweep_events()["found"] == 0  # too recent: their task may still be on its way
    with session_scope() as session:
        session.query(StripeEvent).update({"received_at": utcnow() - timedelta(minutes=5)})
    assert sweep_events()["enqueued"] == len(events)
    wait_for_events([e["id"] for e in events])
    assert subscription_row(customer_id)["status"] == "active"
    assert sweep_events()["found"] == 0


def test_reconciliation_handles_events_the_webhook_missed(stand_in, celery_worker):
    from tasks.billing import reconcile_events

    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    result = reconcile_events()
    handled = [e["id"] for e in events if e["type"] in handlers.HANDLED_TYPES]
    assert set(result["eventIds"]) == set(handled)
    wait_for_events(handled)
    assert pg_scalar("SELECT count(DISTINCT source) FROM stripe_events") == 1
    assert pg_scalar("SELECT min(source) FROM stripe_events") == "reconciliation"
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    # Run again: nothing new.
    assert reconcile_events()["stored"] == 0


@pytest.mark.parametrize("status", [403, 503])
def test_a_refused_thin_listing_does_not_stop_missed_v1_events(stand_in, celery_worker, status):
    """A restricted key without v2 access (403) or a v2 outage: the v1 events are still found."""
    from tasks.billing import reconcile_events

    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    stand_in.fail_next_requests(50, status, path_prefix="/v2/core/events")
    try:
        result = reconcile_events()
    finally:
        stand_in.fail_next_requests(0)
    handled = [e["id"] for e in events if e["type"] in handlers.HANDLED_TYPES]
    assert set(result["eventIds"]) == set(handled)
    assert result["thinListingFailed"] == 1
    wait_for_events(handled)
    assert subscription_row(customer_id)["status"] == "active"
    assert reconcile_events()["thinListingFailed"] == 0


def test_reconciliation_without_stripe_key_is_skipped(celery_worker):
    from tasks.billing import reconcile_events

    assert "STRIPE_SECRET_KEY" in reconcile_events()["skipped"]


def test_reconciliation_repairs_subscriptions_that_drifted_from_stripe(
    stand_in, api_client, admin_headers
):
    from tasks.billing import reconcile_subscriptions

    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id))
    # Changes made in Stripe whose webhooks never arrived: a plan change and a second
    # subscription of the same customer.
    change_plan_in_stripe(stand_in, customer_id, "professional")
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    second = stand_in.create_subscription_directly(
        str(stripe_customer), get_settings().stripe_price_starter, {"customerId": customer_id}
    )
    assert subscription_row(customer_id)["plan"] == "starter"

    result = reconcile_subscriptions()
    # The plan, the second subscription, and the overage item still at starter's price.
    assert result == {"checked": 1, "repaired": 3, "failed": []}
    assert subscription_row(customer_id)["plan"] == "professional"
    overage_keys = [
        item["price"]["lookup_key"]
        for item in _followed_sub(stand_in, customer_id)["items"]["data"]
        if item["price"]["recurring"]["usage_type"] == "metered"
    ]
    assert overage_keys == ["zemfyre_professional_device_overage"]
    assert license_claims(customer_id)["plan"] == "professional"
    assert pg_scalar("SELECT stripe_object_id FROM billing_issues") == second["id"]
    # Nothing has drifted since: a second run repairs nothing.
    assert reconcile_subscriptions()["repaired"] == 0
    metrics = api_client.get("/metrics", headers=admin_headers).text
    assert (
        'billing_tasks_total{outcome="drift_repaired",'
        'task="tasks.billing.reconcile_subscriptions"} 3.0'
    ) in metrics


def _followed_sub(stand_in: Any, customer_id: str) -> dict:
    followed = subscription_row(customer_id)["stripe_subscription_id"]
    return stand_in.client().v1.subscriptions.retrieve(followed).to_dict()


def _item_keys(stand_in: Any, customer_id: str) -> list[str]:
    items = _followed_sub(stand_in, customer_id)["items"]["data"]
    return sorted(str(item["price"]["lookup_key"]) for item in items)


def test_reconciliation_adds_the_overage_item_an_older_subscription_lacks(stand_in):
    from tasks.billing import reconcile_subscriptions

    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "professional"))
    sub = _followed_sub(stand_in, customer_id)
    metered = next(
        i for i in sub["items"]["data"] if i["price"]["recurring"]["usage_type"] == "metered"
    )
    # Sold before the overage prices existed: the flat item only.
    stand_in.client().v1.subscriptions.update(
        sub["id"], params={"items": [{"id": metered["id"], "deleted": True}]}
    )
    assert _item_keys(stand_in, customer_id) == ["zemfyre_professional_monthly"]

    assert reconcile_subscriptions() == {"checked": 1, "repaired": 1, "failed": []}
    assert _item_keys(stand_in, customer_id) == [
        "zemfyre_professional_device_overage",
        "zemfyre_professional_monthly",
    ]
    added = [r for r in stand_in.requests if r.method == "POST" and r.path.endswith(sub["id"])]
    assert added[-1].params["proration_behavior"] == "none"
    assert "payment_behavior" not in added[-1].params
    # Idempotent: nothing left to repair, nothing sent to Stripe.
    assert reconcile_subscriptions()["repaired"] == 0
    again = [r for r in stand_in.requests if r.method == "POST" and r.path.endswith(sub["id"])]
    assert len(again) == len(added)


def test_reconciliation_leaves_ended_subscriptions_without_an_overage_item_alone(stand_in):
    from tasks.billing import reconcile_subscriptions

    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "starter"))
    sub = _followed_sub(stand_in, customer_id)
    metered = next(
        i for i in sub["items"]["data"] if i["price"]["recurring"]["usage_type"] == "metered"
    )
    client = stand_in.client()
    client.v1.subscriptions.update(
        sub["id"], params={"items": [{"id": metered["id"], "deleted": True}]}
    )
    client.v1.subscriptions.cancel(sub["id"])

    result = reconcile_subscriptions()
    assert result["failed"] == [] and _item_keys(stand_in, customer_id) == [
        "zemfyre_starter_monthly"
    ]


def test_an_event_whose_failure_cannot_be_recorded_holds_back_no_other_in_its_group(stand_in):
    from tasks.billing import process_events

    client = stand_in.client()
    stranger = client.v1.customers.create(params={"email": "stranger@example.com"})
    stand_in.create_subscription_directly(stranger["id"], get_settings().stripe_price_starter)
    bad = next(e for e in stand_in.events if e["type"] == "customer.subscription.created")
    customer_id = new_customer()
    events = start_checkout(stand_in, customer_id)
    good = next(e for e in events if e["type"] == "checkout.session.completed")
    with session_scope() as session:
        inbox.store_events(session, [bad, good])
    # Counting one more attempt of the bad event overflows its column: its failure (no local
    # customer) cannot be recorded, as when the database fails under the task.
    with session_scope() as session:
        row = session.scalar(select(StripeEvent).where(StripeEvent.event_id == bad["id"]))
        row.attempts = 2**31 - 1
    outcomes = process_events([bad["id"], good["id"]])
    # The bad one goes on as a task of its own; the good one is handled here, once.
    assert outcomes[0] == {"eventId": bad["id"], "status": "requeued"}
    assert outcomes[1]["status"] == "processed"
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    assert (
        pg_scalar(f"SELECT count(*) FROM stripe_event_attempts WHERE event_id = '{good['id']}'")
        == 1
    )
