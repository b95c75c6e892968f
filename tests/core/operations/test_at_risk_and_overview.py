"""The overview's figures and the money at risk, from rows as the service writes them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.billing import inbox, issues
from core.customers.service import create_customer
from core.db import session_scope
from core.operations.at_risk import money_at_risk
from core.operations.overview import overview
from models import Customer, InstanceUsage, StripeEvent, Subscription, utcnow

NOW = utcnow()


def customer(email: str, plan: str, status: str, **values: Any) -> str:
    with session_scope() as session:
        found = create_customer(session, email=email, plan="trial", company_name=email.upper())
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == found.customer_id)
            .values(plan=plan, status=status, **values)
        )
        return found.customer_id


def paid(email: str, plan: str, status: str = "active", **values: Any) -> str:
    values.setdefault("current_period_ends_at", NOW + timedelta(days=20))
    values.setdefault("paid_through_at", NOW + timedelta(days=20))
    return customer(email, plan, status, stripe_subscription_id=f"sub_{email}", **values)


def payment_failed(customer_id: str, event_id: str, invoice: str, amount: int, at: int) -> None:
    event = {
        "id": event_id,
        "object": "event",
        "type": "invoice.payment_failed",
        "created": at,
        "data": {"object": {"id": invoice, "object": "invoice", "amount_due": amount}},
    }
    with session_scope() as session:
        inbox.store_event(session, event)
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.event_id == event_id)
            .values(status=inbox.PROCESSED, customer_id=customer_id)
        )


def test_overview_counts_customers_and_recurring_revenue_as_the_business_reads_them() -> None:
    paid("a@x.io", "starter")  # 29
    paid("b@x.io", "professional", cancel_at_period_end=True)  # 99 until its period ends
    paid(
        "c@x.io",
        "professional",
        cancel_at_period_end=True,
        current_period_ends_at=NOW - timedelta(hours=1),
    )  # ended, its cancellation not heard of yet: not counted
    paid("d@x.io", "starter", "past_due")  # 29: still live, retries running
    paid("e@x.io", "starter", "unpaid")
    paid("f@x.io", "professional", "trialing", trial_ends_at=NOW + timedelta(days=2))
    paid("g@x.io", "enterprise")  # priced per customer
    paid("h@x.io", "starter", collection_paused=True)
    customer("i@x.io", "trial", "trialing", trial_ends_at=NOW + timedelta(days=1))
    customer("j@x.io", "trial", "trialing", trial_ends_at=NOW + timedelta(days=9))
    customer("k@x.io", "trial", "expired", trial_ends_at=NOW - timedelta(days=1))

    with session_scope() as session:
        seen = overview(session, now=NOW)
    assert seen.customers == 11
    assert seen.by_plan["starter"] == {"active": 2, "past_due": 1, "unpaid": 1}
    assert seen.by_plan["trial"] == {"trialing": 2, "expired": 1}
    assert seen.plan_total("professional") == 3
    assert (seen.mrr_cents, seen.mrr_custom_priced) == (2900 + 9900 + 2900, 1)
    assert seen.trials_ending == 2  # f (paid plan's trial) and i; j ends later
    assert seen.stripe_events_waiting == 0


def test_money_at_risk_names_each_customer_with_what_is_at_stake() -> None:
    late = paid(
        "late@x.io",
        "starter",
        "past_due",
        paid_through_at=NOW - timedelta(days=2),
        trial_ends_at=NOW - timedelta(days=60),  # a renewal failed, not the first charge
    )
    first_failure = int((NOW - timedelta(days=2)).timestamp())
    payment_failed(late, "evt_1", "in_1", 2900, first_failure)
    payment_failed(late, "evt_2", "in_1", 2900, first_failure + 86400)
    gave_up = paid("gone@x.io", "starter", "unpaid", paid_through_at=NOW - timedelta(days=30))
    leaving = paid("leaving@x.io", "professional", cancel_at_period_end=True)
    paid("fine@x.io", "starter")
    crowded = paid("crowded@x.io", "starter")
    trial = customer("try@x.io", "trial", "trialing", trial_ends_at=NOW + timedelta(days=2))
    converting = paid(
        "card@x.io", "professional", "trialing", trial_ends_at=NOW + timedelta(days=2)
    )
    with session_scope() as session:
        issues.record_dispute(
            session,
            leaving,
            {"id": "dp_1", "charge": "ch_1", "amount": 9900, "status": "needs_response"},
        )
        session.execute(
            update(Customer)
            .where(Customer.customer_id == crowded)
            .values(usage_threshold_percent=100)
        )
        session.add(
            InstanceUsage(
                customer_id=crowded,
                instance_id="edge-1",
                active_devices=13,
                total_devices=13,
                reported_at=NOW - timedelta(minutes=5),
                report_id=1,
            )
        )

    with session_scope() as session:
        risk = money_at_risk(session, now=NOW)

    by_customer = {row.customer.customer_id: row for row in risk.failed_payments}
    assert set(by_customer) == {late, gave_up}
    assert by_customer[late].amount_due_cents == 2900
    assert by_customer[late].since == NOW.replace(microsecond=0) - timedelta(days=2)
    # A failed renewal keeps the license 7 days past the date it is paid through.
    assert by_customer[late].access_ends_at == NOW - timedelta(days=2) + timedelta(days=7)
    assert by_customer[gave_up].amount_due_cents is None
    assert by_customer[gave_up].since == NOW - timedelta(days=30)
    assert risk.amount_due_cents == 2900
    assert [(row.customer.customer_id, row.monthly_cents) for row in risk.canceling] == [
        (leaving, 9900)
    ]
    assert [(d.dispute_id, d.amount_cents, d.customer.email) for d in risk.disputes] == [
        ("dp_1", 9900, "leaving@x.io")
    ]
    over = risk.over_limit
    assert [(o.customer.customer_id, o.devices, o.limit, o.billed) for o in over] == [
        (crowded, 13, 10, True)
    ]
    trials = [row.customer.customer_id for row in risk.trials_without_payment]
    assert trials == [trial] and converting not in trials
