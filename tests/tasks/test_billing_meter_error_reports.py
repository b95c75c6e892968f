"""Stripe's meter error reports name only a sample of the invalid events: every report is
recorded as a billing issue with its count, window and causes, so the events it does not name
are not silently lost, also when it names none of ours."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.db import session_scope
from models import BillingIssue, Customer, StripeEvent
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import deliver, wait_for_events
from tests.stripe_stand_in import StripeStandIn
from tests.stripe_stand_in.meters import ERROR_SAMPLES
from tests.tasks.test_billing_metering import (
    START,
    metered,  # noqa: F401 - the fixture
    paying,
    report,
    rows,
    run,
)

pytestmark = pytest.mark.usefixtures("celery_worker")


def meter_error_issues() -> list[BillingIssue]:
    with session_scope() as session:
        found = session.scalars(
            select(BillingIssue).where(BillingIssue.kind == "meter_error")
        ).all()
        session.expunge_all()
        return list(found)


def test_a_report_is_recorded_with_its_count_beyond_the_sampled_events(
    metered: StripeStandIn,  # noqa: F811
    api_client,
) -> None:
    invalid = ERROR_SAMPLES + 1
    customer_ids = []
    for n in range(invalid):
        customer_id, _ = paying(f"elsewhere{n}@example.com")
        with session_scope() as session:
            session.execute(
                update(Customer)
                .where(Customer.customer_id == customer_id)
                .values(stripe_customer_id=f"cus_OfAnotherAccount{n}")
            )
        report(customer_id, "edge-1", 13, START)
        customer_ids.append(customer_id)
    assert run()["sent"] == invalid

    (thin,) = metered.meters.report_meter_errors()
    assert deliver(api_client, thin).status_code == 200
    wait_for_events([thin["id"]])

    failed = [row for cid in customer_ids for row in rows(cid) if row.failed_at is not None]
    assert len(failed) == ERROR_SAMPLES  # only the sampled ones can be named
    (issue,) = meter_error_issues()
    assert issue.stripe_object_id == thin["id"] and issue.resolved_at is None
    assert f"{invalid} meter event(s) invalid" in issue.detail
    assert "meter_event_customer_not_found" in issue.detail


def test_a_report_naming_none_of_ours_is_still_recorded(
    metered: StripeStandIn,  # noqa: F811
    api_client,
) -> None:
    # Someone else's event on our meter (another integration, a test from the Dashboard).
    metered.client().v1.billing.meter_events.create(
        params={
            "event_name": "zemfyre_device_overage",
            "payload": {"stripe_customer_id": "cus_Unknown", "value": "2"},
            "identifier": "not-ours-1",
        }
    )
    (thin,) = metered.meters.report_meter_errors()
    assert deliver(api_client, thin).status_code == 200
    wait_for_events([thin["id"]])

    with session_scope() as session:
        status = session.scalar(
            select(StripeEvent.status).where(StripeEvent.event_id == thin["id"])
        )
    assert status == "processed"
    (issue,) = meter_error_issues()
    assert "1 meter event(s) invalid" in issue.detail


def test_a_report_the_destination_never_delivered_is_found_by_reconciliation_and_handled_once(
    metered: StripeStandIn,  # noqa: F811
    api_client,
) -> None:
    from tasks.billing import reconcile_events

    customer_id, _ = paying("undelivered@example.com")
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id="cus_OfAnotherAccountToo")
        )
    report(customer_id, "edge-1", 13, START)
    assert run()["sent"] == 1
    (thin,) = metered.meters.report_meter_errors()  # made in Stripe, never delivered

    found = reconcile_events()

    assert thin["id"] in found["eventIds"]
    wait_for_events([thin["id"]])
    with session_scope() as session:
        stored = session.scalars(select(StripeEvent).where(StripeEvent.event_id == thin["id"]))
        (event,) = stored.all()
        assert (event.source, event.status) == ("reconciliation", "processed")
        assert "data" not in event.payload  # stored as the destination would have sent it
    (row,) = rows(customer_id)
    assert row.failed_at is not None
    (issue,) = meter_error_issues()
    assert issue.stripe_object_id == thin["id"]
    # Found again, or delivered late after all: stored once, handled once.
    assert thin["id"] not in reconcile_events()["eventIds"]
    assert deliver(api_client, thin).status_code == 200
    assert len(meter_error_issues()) == 1
