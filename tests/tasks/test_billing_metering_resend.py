"""Meter events whose outcome is unknown: resent within hours by beat, while Stripe still refuses
a resent identifier as a duplicate, and set aside for an operator once that may no longer be so
(Stripe remembers identifiers for about 24 hours), never sent blindly into a second charge.

The stand-in remembers identifiers for ever; what it holds is what a customer is billed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.billing.gateway import get_gateway
from core.billing.metering import sending
from core.billing.metering.days import record_day
from core.db import session_scope
from core.settings import get_settings
from core.usage.rollups import rollup_day
from models import utcnow
from tasks.billing import send_meter_events
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn
from tests.tasks.test_billing_metering import (
    DAY,
    START,
    meter_event_posts,
    metered,  # noqa: F401 - the fixture
    on_meter,
    paying,
    report,
    rows,
)

pytestmark = pytest.mark.usefixtures("celery_worker")

runner = CliRunner()


def recorded(email: str, devices: int) -> tuple[str, str, int]:
    """A paying customer (starter: 10 devices) whose day is recorded, not sent yet; its event."""
    customer_id, stripe_id = paying(email)
    report(customer_id, "edge-1", devices, START + timedelta(hours=6))
    with session_scope() as session:
        rollup_day(session, DAY)
        record_day(session, DAY)
    (row,) = rows(customer_id)
    return customer_id, stripe_id, row.id


def attempt_without_answer(event_id: int, *, hours_ago: float, reach_stripe: bool) -> None:
    """An attempt whose answer was never recorded (the worker died): noted as it began
    `hours_ago`, and, when `reach_stripe`, taken by Stripe."""
    with session_scope() as session:
        claim = sending.claim_attempt(session, event_id, now=utcnow() - timedelta(hours=hours_ago))
        (event,) = [e for e in sending.unsent_events(session) if e.id == event_id]
    assert claim.began is not None
    if reach_stripe:
        assert sending.send_event(get_gateway(), event).delivered


def resend() -> dict:
    """What beat runs every OVERAGE_EVENT_RETRY_INTERVAL_SECONDS."""
    return send_meter_events.delay().get(timeout=60)


def test_beat_resends_unsent_meter_events_well_inside_stripes_duplicate_window() -> None:
    from workers.beat import beat_schedule
    from workers.queues import DEFAULT, TASK_ROUTES

    settings = get_settings()
    (job,) = [
        job
        for job in beat_schedule(settings).values()
        if job["task"] == "tasks.billing.send_meter_events"
    ]
    assert job["schedule"] == settings.overage_event_retry_interval_seconds <= 3600
    assert settings.overage_event_resend_window_hours < 24
    assert TASK_ROUTES["tasks.billing.send_meter_events"] == {"queue": DEFAULT}


def test_an_answer_lost_is_made_good_by_the_next_resend_and_billed_once(
    metered: StripeStandIn,  # noqa: F811
) -> None:
    customer_id, stripe_id, event_id = recorded("lost@example.com", 14)
    attempt_without_answer(event_id, hours_ago=1, reach_stripe=True)
    assert on_meter(metered, stripe_id) == 4

    result = resend()

    assert (result["sent"], result["unconfirmed"], result["unsent"]) == (1, 0, 0)
    (row,) = rows(customer_id)
    # Stripe answered the resend with the event it holds (its idempotent replay, or a duplicate
    # refusal): delivered, not twice.
    assert row.sent_at is not None and row.stripe_response["identifier"] == row.identifier
    assert row.outcome_unknown_since is None
    assert on_meter(metered, stripe_id) == 4


def test_an_outcome_unknown_beyond_stripes_window_is_set_aside_not_resent(
    metered: StripeStandIn,  # noqa: F811
    api_client,
    admin_headers,
) -> None:
    # Attempts made 25 hours ago whose answers were lost: Stripe may hold either event and would
    # no longer refuse a resend as a duplicate. (The stand-in holds neither.)
    held, held_stripe, held_id = recorded("held@example.com", 13)
    missing, missing_stripe, missing_id = recorded("missing@example.com", 16)
    for event_id in (held_id, missing_id):
        attempt_without_answer(event_id, hours_ago=25, reach_stripe=False)
    posts = meter_event_posts(metered)

    result = resend()

    assert (result["sent"], result["unconfirmed"], result["unsent"]) == (0, 2, 0)
    assert meter_event_posts(metered) == posts
    for customer_id in (held, missing):
        (row,) = rows(customer_id)
        assert row.sent_at is None and row.unconfirmed_at is not None
        assert "meter-settle" in (row.last_error or "")
    assert resend()["sent"] == 0  # later runs leave them alone too
    assert meter_event_posts(metered) == posts
    metrics = api_client.get("/metrics", headers=admin_headers).text
    assert "overage_meter_events_unconfirmed 2.0" in metrics
    listed = runner.invoke(app, ["stripe", "meter-events", "--unconfirmed"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert held in listed.output and missing in listed.output and "unconfirmed" in listed.output

    # The operator finds the first in Stripe's meter, and not the second.
    found = runner.invoke(app, ["stripe", "meter-settle", str(held_id), "--in-stripe"])
    assert found.exit_code == 0, found.output
    absent = runner.invoke(app, ["stripe", "meter-settle", str(missing_id), "--not-in-stripe"])
    assert absent.exit_code == 0, absent.output
    assert "1 sent to Stripe" in absent.output

    (row,) = rows(held)
    assert row.sent_at is not None and row.unconfirmed_at is None
    assert on_meter(metered, held_stripe) == 0  # taken for what Stripe holds: never sent again
    (row,) = rows(missing)
    assert row.sent_at is not None
    assert on_meter(metered, missing_stripe) == 6
    assert meter_event_posts(metered) == posts + 1
    again = runner.invoke(app, ["stripe", "meter-settle", str(missing_id), "--not-in-stripe"])
    assert again.exit_code == 0 and "Nothing to settle" in again.output
    assert meter_event_posts(metered) == posts + 1


def test_only_a_refusal_of_the_attempt_that_raised_the_doubt_lifts_it(
    metered: StripeStandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_EVENT_MAX_RETRIES", "0")
    # Given up on at the first refusal, so each customer's row is the only one a run sends.
    monkeypatch.setenv("OVERAGE_EVENT_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    refused, refused_stripe, _ = recorded("refused@example.com", 12)
    metered.client().v1.customers.delete(refused_stripe)  # Stripe refuses its events for good
    resend()
    (row,) = rows(refused)
    assert row.refusals == 1 and row.outcome_unknown_since is None  # proof it never landed

    # Stripe failing: whether it took the event is unknown, and a later refusal is no proof
    # about that earlier attempt.
    flaky, flaky_stripe, _ = recorded("flaky@example.com", 12)
    metered.set_down(True)
    resend()
    metered.set_down(False)
    (row,) = rows(flaky)
    doubt = row.outcome_unknown_since
    assert row.sent_at is None and doubt is not None
    metered.client().v1.customers.delete(flaky_stripe)
    resend()
    (row,) = rows(flaky)
    assert row.refusals == 1 and row.outcome_unknown_since == doubt
    get_settings.cache_clear()
