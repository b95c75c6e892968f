"""Meter events Stripe refuses for good: tried a bounded number of runs, then `failed` for an
operator (listed, on /metrics), no longer sent by the runs, and sent again on an operator's retry.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from cli.main import app
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.settings import get_settings
from models import Customer
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn
from tests.tasks.test_billing_metering import (
    START,
    meter_event_posts,
    metered,  # noqa: F401 - the fixture
    on_meter,
    paying,
    report,
    rows,
    run,
)

pytestmark = pytest.mark.usefixtures("celery_worker")

runner = CliRunner()


@pytest.fixture
def two_attempts(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OVERAGE_EVENT_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("STRIPE_EVENT_MAX_RETRIES", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _deleted_in_stripe(stand_in: StripeStandIn, email: str) -> tuple[str, str]:
    customer_id, stripe_id = paying(email)
    report(customer_id, "edge-1", 13, START + timedelta(hours=5))  # starter: 3 over
    stand_in.client().v1.customers.delete(stripe_id)
    return customer_id, stripe_id


def test_a_refused_event_is_tried_a_bounded_number_of_runs_then_failed(
    metered: StripeStandIn,  # noqa: F811
    two_attempts: None,
    api_client,
    admin_headers,
) -> None:
    customer_id, _ = _deleted_in_stripe(metered, "gone@example.com")
    # Stripe down first: those attempts never count towards giving up.
    metered.set_down(True)
    down = run()
    metered.set_down(False)
    assert (down["failed"], down["failedForGood"]) == (1, 0)
    (row,) = rows(customer_id)
    assert row.attempts == 2 and row.refusals == 0  # the run and its one retry

    first = run()
    assert (first["failed"], first["failedForGood"]) == (1, 0)
    (row,) = rows(customer_id)
    assert row.refusals == 1 and row.failed_at is None and "No such customer" in row.last_error

    second = run()
    assert (second["failed"], second["failedForGood"]) == (1, 1)
    (row,) = rows(customer_id)
    assert row.refusals == 2 and row.failed_at is not None and row.sent_at is None
    assert row.attempts == 4

    # Given up on: later runs no longer send it.
    posts = meter_event_posts(metered)
    third = run()
    assert (third["sent"], third["failed"], third["unsent"]) == (0, 0, 0)
    assert meter_event_posts(metered) == posts

    metrics = api_client.get("/metrics", headers=admin_headers).text
    assert "overage_meter_events_failed 1.0" in metrics
    listed = runner.invoke(app, ["stripe", "meter-events", "--failed"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert customer_id in listed.output and "failed" in listed.output


def test_an_operator_retries_a_failed_event_once_the_cause_is_fixed(
    metered: StripeStandIn,  # noqa: F811
    two_attempts: None,
) -> None:
    customer_id, _ = _deleted_in_stripe(metered, "back@example.com")
    run()
    run()
    (row,) = rows(customer_id)
    assert row.failed_at is not None
    # The cause fixed: the customer has a Stripe customer again (a new checkout made one).
    new_stripe_id = str(
        get_gateway().create_customer(
            customer_id=customer_id, email="back@example.com", name=None, replacing="gone"
        )["id"]
    )
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id=new_stripe_id)
        )

    retried = runner.invoke(app, ["stripe", "meter-retry", "--all"], env={"COLUMNS": "200"})

    assert retried.exit_code == 0, retried.output
    assert "1 sent to Stripe" in retried.output
    (row,) = rows(customer_id)
    assert row.sent_at is not None and row.failed_at is None
    assert on_meter(metered, new_stripe_id) == 3
    # Retrying again finds nothing failed, and sends nothing twice.
    again = runner.invoke(app, ["stripe", "meter-retry", "--all"])
    assert again.exit_code == 0 and "Nothing to retry" in again.output
    assert on_meter(metered, new_stripe_id) == 3


def test_retry_names_what_to_retry(metered: StripeStandIn) -> None:  # noqa: F811
    refused = runner.invoke(app, ["stripe", "meter-retry"])
    assert refused.exit_code != 0 and "--all" in refused.output


def test_the_metering_command_says_when_events_are_given_up_on(
    metered: StripeStandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OVERAGE_EVENT_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    try:
        _deleted_in_stripe(metered, "once@example.com")
        result = runner.invoke(
            app, ["tasks", "run", "meter-usage", "--day", START.date().isoformat()]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "1 refused by Stripe for good and no longer sent" in result.output
    assert "billing stripe meter-retry" in result.output


def test_events_stripe_reports_invalid_after_accepting_them_are_marked_failed(
    metered: StripeStandIn,  # noqa: F811
    api_client,
) -> None:
    """Stripe validates meter events after accepting them: one naming a customer it does not
    know (here a Stripe customer of another account) is reported by the thin event
    `v1.billing.meter.error_report_triggered`, delivered to our webhook."""
    from tests.stripe_fixtures import deliver, wait_for_events

    customer_id, _ = paying("elsewhere@example.com")
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id="cus_OfAnotherAccount")
        )
    report(customer_id, "edge-1", 13, START + timedelta(hours=5))  # starter: 3 over
    assert run()["sent"] == 1  # accepted at once
    (sent,) = rows(customer_id)
    refused_identifier = sent.identifier

    (thin,) = metered.meters.report_meter_errors()
    assert deliver(api_client, thin).status_code == 200
    wait_for_events([thin["id"]])

    (row,) = rows(customer_id)
    assert row.sent_at is None and row.failed_at is not None
    assert "meter_event_customer_not_found" in str(row.last_error)
    assert row.stripe_response and row.stripe_response["reportedInvalid"] == refused_identifier
    assert row.identifier != refused_identifier  # a retry is not taken for a duplicate
    listed = runner.invoke(app, ["stripe", "meter-events", "--failed"])
    assert str(row.id) in listed.output
    # Delivered again (Stripe retries deliveries): nothing changes.
    assert deliver(api_client, thin).status_code == 200
    assert rows(customer_id)[0].identifier == row.identifier
