"""The metering runs the tasks call: meter finished days, and send every unsent meter event.

Long runs that keep their progress (docs/architecture.md, "Who owns the transaction"): the task
hands each run its transaction factory (`core.db.Transaction`, `session_scope`), and the run
opens one transaction per piece of work with it. A day's rollup and its recorded events are
committed before anything is sent, and each send's claim and answer are committed on either side
of the Stripe call, so a crash between them leaves its doubt on record (`sending`). None is open
while Stripe answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core.billing.gateway import StripeGateway
from core.billing.metering import days, sending
from core.db import Transaction
from core.usage.rollups import begin_rollup, rollup_day

log = logging.getLogger(__name__)


@dataclass
class Sending:
    pending: int = 0
    sent: int = 0
    failed: int = 0
    failed_for_good: int = 0
    # Set aside this run: an outcome unknown for longer than Stripe's duplicate window.
    unconfirmed: int = 0
    stripe_down: bool = False

    def summary(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "failedForGood": self.failed_for_good,
            "unconfirmed": self.unconfirmed,
            "unsent": self.pending - self.sent - self.unconfirmed,
        }


@dataclass
class MeterRun:
    recorded: list[days.DayRecord] = field(default_factory=list)
    sending: Sending = field(default_factory=Sending)

    @property
    def stripe_down(self) -> bool:
        return self.sending.stripe_down

    def summary(self) -> dict[str, Any]:
        return {
            "days": [record.day.isoformat() for record in self.recorded],
            "recorded": sum(record.recorded for record in self.recorded),
            "deviceDays": {record.day.isoformat(): record.device_days for record in self.recorded},
            **self.sending.summary(),
        }


def meter_days(
    transaction: Transaction, gateway: StripeGateway, day: date | None = None
) -> MeterRun:
    """Meter `day` (refused unless finished and young enough for Stripe) or, by default,
    yesterday and the OVERAGE_RECHECK_DAYS before it: roll each up again (late reports of the
    day count), record what it still owes, then send every meter event not delivered yet, of any
    day."""
    chosen = [days.meterable_day(day)] if day is not None else days.days_to_meter()
    run = MeterRun(recorded=record_days(transaction, chosen))
    run.sending = send_unsent(transaction, gateway)
    return run


def meter_customer(
    transaction: Transaction, gateway: StripeGateway, stripe_customer_id: str
) -> MeterRun:
    """The nightly run for one Stripe customer's customer, now: their finished days not
    recorded yet (`days.customer_days_to_meter`) rolled up and recorded, then their unsent
    events sent. What it records, the nightly run finds recorded and does not record again."""
    with transaction() as session:
        customer_id, chosen = days.customer_days_to_meter(session, stripe_customer_id)
    run = MeterRun()
    if customer_id is not None:
        run.recorded = record_days(transaction, chosen, customer_id=customer_id)
    run.sending = send_unsent(transaction, gateway, stripe_customer_id=stripe_customer_id)
    return run


def record_days(
    transaction: Transaction, chosen: list[date], *, customer_id: str | None = None
) -> list[days.DayRecord]:
    """Roll each day up again (late reports of the day count) and record what it still owes,
    of every customer or only `customer_id`, each step committed before the next."""
    recorded = []
    for each in chosen:
        with transaction() as session:
            begin_rollup(session, each)
        with transaction() as session:
            rollup_day(session, each, customer_id=customer_id)
        with transaction() as session:
            recorded.append(days.record_day(session, each, customer_id=customer_id))
    return recorded


def send_unsent(
    transaction: Transaction, gateway: StripeGateway, *, stripe_customer_id: str | None = None
) -> Sending:
    """Send the unsent meter events (of one Stripe customer, when given) one by one: each
    attempt noted and each answer stored in a transaction of its own; stops at the first sign
    of Stripe being down. Events whose outcome stayed unknown too long are set aside, not sent
    (all of them first on a full run; one customer's when their claim finds them so)."""
    set_aside: list[int] = []
    if stripe_customer_id is None:
        with transaction() as session:
            set_aside = sending.set_aside_unconfirmed(session)
    with transaction() as session:
        # One batch per run: a row Stripe refuses for good must not loop; the next run goes on.
        pending = sending.unsent_events(session, stripe_customer_id=stripe_customer_id)
    result = Sending(pending=len(pending) + len(set_aside), unconfirmed=len(set_aside))
    for event in pending:
        with transaction() as session:
            claim = sending.claim_attempt(session, event.id)
        if claim.began is None:
            # Set aside now (its doubt aged), or sent, failed or set aside by another run.
            result.unconfirmed += claim.set_aside
            result.pending -= not claim.set_aside
            continue
        outcome = sending.send_event(gateway, event)
        with transaction() as session:
            if sending.record_outcome(session, outcome, claim.began):
                result.failed_for_good += 1
                log.error(
                    "meter event %s refused by Stripe for good, marked failed: %s",
                    event.identifier,
                    outcome.error,
                )
        result.sent += outcome.delivered
        result.failed += not outcome.delivered
        if outcome.retryable:
            # Stripe is down or limiting: stop here, the retry sends the rest.
            result.stripe_down = True
            break
    if result.unconfirmed:
        log.error(
            "%d meter event(s) of unknown outcome set aside, not resent: "
            "`billing stripe meter-events --unconfirmed`",
            result.unconfirmed,
        )
    return result
