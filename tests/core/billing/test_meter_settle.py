"""A plan change swapping the overage item waits until Stripe has aggregated the meter events it
just sent, since the swap's proration bills only what Stripe has counted by then: "Stripe
processes meter events asynchronously, so aggregated usage in meter event summaries and on
upcoming invoices might not immediately reflect recently received meter events"
(docs.stripe.com/billing/subscriptions/usage-based/recording-usage). The stand-in plays that
with an aggregation delay on its clock (real time here, offset)."""

from __future__ import annotations

import time

import pytest

from core.billing import changes
from core.billing.gateway import StripeUnavailableError, get_gateway
from core.db import session_scope
from core.settings import get_settings
from tests.core.billing.test_meter_before_swap import (
    _starter_with_an_unsent_day,
    upgrade_bills_the_day_at_starters_price,
)
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import configured_for, stripe_subscription
from tests.stripe_stand_in import start_stand_in
from tests.tasks.test_billing_metering import rows


def test_the_swap_waits_until_stripe_counts_the_events_just_sent() -> None:
    offset = [-5 * 86400.0]
    server = start_stand_in(clock=lambda: time.time() + offset[0])
    try:
        with configured_for(server):
            customer_id, sub_id = _starter_with_an_unsent_day(server, "professional")
            offset[0] = 0.0
            server.set_meter_aggregation_delay(1.0)

            # Billed with the swap under starter's item: 4 device-days at 10 cents, not lost.
            upgrade_bills_the_day_at_starters_price(server, sub_id)
            (row,) = rows(customer_id)
            assert row.sent_at is not None
    finally:
        server.stop()


def test_a_plan_change_is_refused_while_stripe_has_not_counted_them() -> None:
    offset = [-5 * 86400.0]
    server = start_stand_in(clock=lambda: time.time() + offset[0])
    patch = pytest.MonkeyPatch()
    try:
        with configured_for(server):
            customer_id, sub_id = _starter_with_an_unsent_day(server, "professional")
            offset[0] = 0.0
            server.set_meter_aggregation_delay(30.0)
            patch.setenv("OVERAGE_SETTLE_SECONDS", "1")
            get_settings.cache_clear()

            began = time.monotonic()
            with session_scope() as session, pytest.raises(StripeUnavailableError) as refused:
                changes.change_plan(
                    session, get_gateway(), sub_id, "professional", transaction=session_scope
                )
            assert time.monotonic() - began < 10
            assert refused.value.headers["Retry-After"]

            # Nothing changed in Stripe: still starter with its overage item.
            prices = [
                item["price"]["lookup_key"]
                for item in stripe_subscription(server, customer_id)["items"]["data"]
            ]
            assert sorted(prices) == ["zemfyre_starter_device_overage", "zemfyre_starter_monthly"]
            # Once Stripe has counted them, the change bills them at starter's price.
            offset[0] = 31.0
            upgrade_bills_the_day_at_starters_price(server, sub_id)
    finally:
        patch.undo()
        get_settings.cache_clear()
        server.stop()
