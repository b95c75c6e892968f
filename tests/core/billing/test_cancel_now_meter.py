"""Cancelling now bills the overage recorded but not sent yet: the meter events go first.

`invoice_now` makes the final invoice bill the metered usage reported up to the cancel
(docs.stripe.com/api/subscriptions/cancel#cancel_subscription-invoice_now); an event sent after
it belongs to no live subscription item and is billed by nothing. So the cancel sends the unsent
events first, and sending never marks an event of a subscription cancelled at once as sent.
"""

from __future__ import annotations

import pytest

from core.billing import changes
from core.billing.gateway import StripeUnavailableError, get_gateway
from core.billing.metering import runs
from core.db import session_scope
from tests.core.billing.test_meter_before_swap import an_unsent_starter_day, billed_overage
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import stripe_subscription
from tests.tasks.test_billing_metering import rows


@pytest.mark.parametrize("door", ["cancel", "deactivate"])
def test_cancel_now_bills_the_unsent_overage_on_its_final_invoice(door: str) -> None:
    with an_unsent_starter_day(f"cancel-{door}") as (server, customer_id, sub_id):
        with session_scope() as session:
            if door == "cancel":
                changes.cancel_subscription(
                    session, get_gateway(), sub_id, transaction=session_scope, immediately=True
                )
            else:
                changes.deactivate_customer(
                    session, get_gateway(), customer_id, transaction=session_scope,
                    immediately=True,
                )  # fmt: skip
        # The hourly resend after it finds nothing left to send.
        assert runs.send_unsent(session_scope, get_gateway()).pending == 0
        (row,) = rows(customer_id)
        assert row.sent_at is not None
        # Yesterday's 4 device-days at starter's 10 cents, on the final invoice.
        assert billed_overage(server, sub_id) == [("zemfyre_starter_device_overage", 4, 40)]


def test_cancel_now_waits_while_stripe_does_not_take_the_unsent_overage() -> None:
    with an_unsent_starter_day("cancel-down") as (server, customer_id, sub_id):
        server.fail_next_requests(20, 503, path_prefix="/v1/billing/meter_events")
        with session_scope() as session, pytest.raises(StripeUnavailableError):
            changes.cancel_subscription(
                session, get_gateway(), sub_id, transaction=session_scope, immediately=True
            )
        assert stripe_subscription(server, customer_id)["status"] == "active"
        (row,) = rows(customer_id)
        assert row.sent_at is None


def test_an_event_left_unsent_at_a_cancel_now_is_failed_not_marked_sent() -> None:
    """Recorded after the cancel (a late rollup): nothing bills it, so it is never `sent`."""
    with an_unsent_starter_day("cancel-late") as (server, customer_id, sub_id):
        server.fail_next_requests(20, 503, path_prefix="/v1/billing/meter_events")
        # Cancelled at once elsewhere (the Dashboard): the event was never sent first.
        server.client().v1.subscriptions.cancel(sub_id, {"invoice_now": True})
        server.fail_next_requests(0)
        with session_scope() as session:
            changes.cancel_subscription(
                session, get_gateway(), sub_id, transaction=session_scope, immediately=True
            )
        sending = runs.send_unsent(session_scope, get_gateway())
        (row,) = rows(customer_id)
        assert sending.sent == 0
        assert row.sent_at is None and row.failed_at is not None
        assert "canceled at once" in (row.last_error or "")
