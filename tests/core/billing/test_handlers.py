"""Event handlers beyond subscriptions and invoices: a Stripe customer deleted, disputed charges,
a trial about to end, a payment that needs the payer's action."""

from __future__ import annotations

import copy
from typing import Any

from core.billing import issues
from core.db import session_scope
from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    license_claims,
    new_customer,
    start_checkout,
    subscription_row,
)


def _paying(stand_in: Any) -> tuple[str, str]:
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id))
    return customer_id, subscription_row(customer_id)["stripe_subscription_id"]


def _stripe_customer(customer_id: str) -> object:
    return pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )


def test_a_customer_deleted_in_stripe_clears_the_local_stripe_customer(stand_in):
    customer_id, _ = _paying(stand_in)
    stripe_customer = _stripe_customer(customer_id)
    mark = len(stand_in.events)
    stand_in.client().v1.customers.delete(str(stripe_customer))
    outcomes = handle_inline(stand_in.events[mark:])
    assert {outcome.status for outcome in outcomes} == {"processed"}
    assert _stripe_customer(customer_id) is None
    # Its subscription ended with it; the license says so.
    assert subscription_row(customer_id)["status"] == "canceled"
    assert license_claims(customer_id)["subscription"]["status"] == "canceled"


def test_disputes_are_recorded_shown_and_resolved_without_cutting_the_customer_off(stand_in):
    customer_id, sub_id = _paying(stand_in)
    opened = stand_in.dispute_latest_invoice(sub_id)
    assert [e["type"] for e in opened] == ["charge.dispute.created"]
    handle_inline(opened)
    with session_scope() as session:
        found = issues.open_issues(session, customer_id)
        assert [(i.kind, i.stripe_status, i.amount_cents) for i in found] == [
            ("dispute", "needs_response", 2900)
        ]
    assert license_claims(customer_id)["subscription"]["status"] == "active"

    dispute_id = opened[0]["data"]["object"]["id"]
    handle_inline(stand_in.close_dispute(dispute_id, "won"))
    with session_scope() as session:
        assert issues.open_issues(session, customer_id) == []
        assert issues.open_issue_counts(session) == dict.fromkeys(
            ("conflict", "dispute", "promotion", "meter_error"), 0
        )


def _event_like(template: dict[str, Any], event_type: str, suffix: str) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["id"] = f"{template['id']}{suffix}"
    event["type"] = event_type
    return event


def test_trial_will_end_and_payment_action_required_are_handled(stand_in):
    customer_id, _ = _paying(stand_in)
    created = next(e for e in stand_in.events if e["type"] == "customer.subscription.created")
    paid = next(e for e in stand_in.events if e["type"] == "invoice.paid")
    outcomes = handle_inline(
        [
            _event_like(created, "customer.subscription.trial_will_end", "twe"),
            _event_like(paid, "invoice.payment_action_required", "par"),
        ]
    )
    # Both re-read the subscription (nothing more is granted: it is unchanged).
    assert [(outcome.status, outcome.customer_id) for outcome in outcomes] == [
        ("processed", customer_id),
        ("processed", customer_id),
    ]
    assert subscription_row(customer_id)["status"] == "active"


def test_after_the_stripe_customer_is_deleted_a_new_checkout_makes_a_new_one(stand_in):
    from core.billing.checkout import create_checkout
    from core.billing.gateway import get_gateway

    customer_id, _ = _paying(stand_in)
    deleted = str(_stripe_customer(customer_id))
    mark = len(stand_in.events)
    stand_in.client().v1.customers.delete(deleted)
    handle_inline(stand_in.events[mark:])
    with session_scope() as session:
        result = create_checkout(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan="starter",
            success_url="https://example.com/ok",
            cancel_url="https://example.com/no",
        )
    assert result.stripe_customer_id != deleted
    assert _stripe_customer(customer_id) == result.stripe_customer_id
    handle_inline(stand_in.complete_checkout(result.session_id))
    assert subscription_row(customer_id)["status"] == "active"
