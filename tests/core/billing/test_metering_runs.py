"""The metering runs take their transactions from the task that calls them (docs/architecture.md,
"Who owns the transaction"): every piece of work goes through the factory they are given, one
transaction per piece, so a run that stops half-way keeps what it finished."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.billing.gateway import get_gateway
from core.billing.metering import runs
from core.db import new_session, session_scope
from models import UsageDaily
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn
from tests.tasks.test_billing_metering import (
    DAY,
    METER_EVENTS_PATH,
    START,
    metered,  # noqa: F401 - the fixture
    on_meter,
    paying,
    report,
    rows,
)


@contextmanager
def never_committed() -> Iterator[Session]:
    """A transaction factory whose every transaction is rolled back."""
    session = new_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def _rolled_up(customer_id: str) -> int:
    with session_scope() as session:
        return len(
            session.scalars(
                select(UsageDaily).where(
                    UsageDaily.customer_id == customer_id, UsageDaily.day == DAY
                )
            ).all()
        )


def test_a_run_opens_no_transaction_of_its_own(metered: StripeStandIn) -> None:  # noqa: F811
    # Given a factory whose transactions never commit, nothing the run did is kept: it wrote
    # only through the transactions its caller opened.
    customer_id, stripe_id = paying("uncommitted@example.com")  # starter: 10 devices
    report(customer_id, "edge-1", 14, START.replace(hour=5))

    run = runs.meter_days(never_committed, get_gateway(), DAY)

    # Each piece saw only what the pieces before it committed: no rollup, so nothing recorded.
    assert [record.recorded for record in run.recorded] == [0]
    assert _rolled_up(customer_id) == 0 and rows(customer_id) == []
    assert run.sending.sent == 0 and on_meter(metered, stripe_id) == 0


def test_a_run_stopped_after_a_send_keeps_the_work_before_it(metered: StripeStandIn) -> None:  # noqa: F811
    # The database goes away right after Stripe took the event: the day's rollup, its recorded
    # event and the claim of the send were committed in transactions of their own, so the
    # doubt is on record (an attempt whose outcome is unknown) for the next run to settle.
    customer_id, stripe_id = paying("stopped@example.com")
    report(customer_id, "edge-1", 13, START.replace(hour=6))

    @contextmanager
    def failing_after_a_send() -> Iterator[Session]:
        if any(request.path == METER_EVENTS_PATH for request in metered.requests):
            raise ConnectionError("database gone")
        with session_scope() as session:
            yield session

    with pytest.raises(ConnectionError):
        runs.meter_days(failing_after_a_send, get_gateway(), DAY)

    assert _rolled_up(customer_id) == 1
    (row,) = rows(customer_id)
    assert row.value == 3 and row.sent_at is None and row.outcome_unknown_since is not None
    assert on_meter(metered, stripe_id) == 3
