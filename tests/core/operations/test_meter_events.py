"""Meter events per customer and day: device-days, states, and the events an action needs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.customers.service import create_customer
from core.db import session_scope
from core.errors import InvalidInputError
from core.operations.meter_events import customer_days
from models import OverageMeterEvent, utcnow

NOW = utcnow()
TODAY = NOW.date()


def _event(customer_id: str, days_ago: int, sequence: int, value: int, **state: object):
    day = TODAY - timedelta(days=days_ago)
    return OverageMeterEvent(
        customer_id=customer_id,
        day=day,
        sequence=sequence,
        value=value,
        plan="starter",
        stripe_customer_id="cus_1",
        event_name="zemfyre_device_overage",
        identifier=f"{customer_id}-{day}-{sequence}",
        **state,
    )


def test_days_are_grouped_with_their_states_and_the_events_to_act_on() -> None:
    with session_scope() as session:
        acme = create_customer(session, email="ops@acme.io").customer_id
        beta = create_customer(session, email="ops@beta.io").customer_id
        session.add_all(
            [
                _event(acme, 1, 0, 3, sent_at=NOW),
                _event(acme, 1, 1, 2, failed_at=NOW, last_error="No such customer: 'cus_1'"),
                _event(acme, 2, 0, 4, sent_at=NOW),
                _event(beta, 1, 0, 7, unconfirmed_at=NOW, last_error="Stripe answered 503"),
                _event(beta, 30, 0, 9, sent_at=NOW),  # outside the week
            ]
        )

    with session_scope() as session:
        week = customer_days(session, now=NOW)
        failed = customer_days(session, state="failed", now=NOW)
        of_beta = customer_days(session, customer_id=beta, days=60, now=NOW)

    summary = [(d.customer_id, d.day, d.device_days, d.events, d.state) for d in week]
    yesterday, before = TODAY - timedelta(days=1), TODAY - timedelta(days=2)
    assert summary == sorted(
        [
            (acme, yesterday, 5, 2, "failed"),
            (beta, yesterday, 7, 1, "unconfirmed"),
            (acme, before, 4, 1, "sent"),
        ],
        key=lambda row: (-row[1].toordinal(), row[0]),
    )
    acme_day = next(d for d in week if d.customer_id == acme and d.day == yesterday)
    assert acme_day.email == "ops@acme.io"
    assert acme_day.counts == {"sent": 1, "unsent": 0, "failed": 1, "unconfirmed": 0}
    assert [(n.state, n.value, n.error) for n in acme_day.notes] == [
        ("failed", 2, "No such customer: 'cus_1'")
    ]
    assert [(d.customer_id, d.day) for d in failed] == [(acme, yesterday)]
    assert [d.day for d in of_beta] == [yesterday, TODAY - timedelta(days=30)]

    with pytest.raises(InvalidInputError) as bad:
        customer_days(session, days=0)
    assert bad.value.field == "days"
