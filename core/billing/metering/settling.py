"""Waiting for Stripe to count the meter events just sent, before an update bills them.

Stripe processes meter events asynchronously: "aggregated usage in meter event summaries and on
upcoming invoices might not immediately reflect recently received meter events"
(docs.stripe.com/billing/subscriptions/usage-based/recording-usage). An update swapping or
removing the overage item (or a cancel now) bills the usage Stripe has aggregated at that
moment, so after `moves.meter_first` sent the unsent events, the meter's event summary for the
customer over the period so far is polled until it holds at least what our rows say was sent
into it, for OVERAGE_SETTLE_SECONDS at most; then StripeUnavailableError (a 503 with
Retry-After, nothing changed): a plan change made later rather than money lost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from core.billing.gateway import StripeGateway, StripeUnavailableError
from core.billing.metering.days import event_timestamp
from core.db import Transaction
from core.settings import get_settings
from models import OverageMeterEvent

Obj = dict[str, Any]

FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 1.0


def _stamp(row: OverageMeterEvent) -> int:
    """The timestamp the row's event was sent with (Stripe's answer, else how it was stamped)."""
    stored = (row.stripe_response or {}).get("timestamp")
    if isinstance(stored, int):
        return stored
    if row.carried_into is not None:
        return int(row.carried_into.timestamp())
    return event_timestamp(row.day)


def sent_in(transaction: Transaction, stripe_customer_id: str, start: int, end: int) -> int:
    """The device-days our rows say were sent for the customer stamped in [start, end)."""
    first_day = datetime.fromtimestamp(start, UTC).date()
    with transaction() as session:
        rows = session.scalars(
            select(OverageMeterEvent).where(
                OverageMeterEvent.stripe_customer_id == stripe_customer_id,
                OverageMeterEvent.sent_at.is_not(None),
                OverageMeterEvent.day >= first_day,
            )
        ).all()
        return sum(row.value for row in rows if start <= _stamp(row) < end)


def wait_until_counted(
    transaction: Transaction, gateway: StripeGateway, sub: Obj, item: Obj, refusal: str
) -> None:
    """Poll the overage item's meter until Stripe's summary of the customer's period so far
    holds what we sent into it; StripeUnavailableError saying `refusal` when it does not within
    OVERAGE_SETTLE_SECONDS."""
    meter_id = str(((item.get("price") or {}).get("recurring") or {}).get("meter") or "")
    period_start = item.get("current_period_start") or sub.get("current_period_start")
    if not meter_id or period_start is None:
        return
    customer = str(sub["customer"])
    # Summaries take minute boundaries: from the period's minute to the one after now.
    start = int(period_start) // 60 * 60
    end = (int(time.time()) // 60 + 1) * 60
    expected = sent_in(transaction, customer, int(period_start), end)
    deadline = time.monotonic() + get_settings().overage_settle_seconds
    pause = FIRST_PAUSE_SECONDS
    while gateway.meter_usage(meter_id, customer, start, end) < expected:
        if time.monotonic() + pause > deadline:
            raise StripeUnavailableError(
                f"Stripe has not counted the overage meter events just sent yet; {refusal}"
            )
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
