"""The operations pages through the test client: what each shows, each action audited, viewers
refused. (Browser tests of the same pages: test_operations_browser.py.)"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from core import audit
from core.billing import inbox, issues
from core.customers.service import create_customer
from core.db import session_scope
from core.operations import jobs
from models import Customer, OverageMeterEvent, StripeEvent, utcnow
from tests.console.conftest import ORIGIN
from tests.console.operations_data import past_due_customer
from tests.helpers.job_runs import record_run

NOW = utcnow()


def _post(client, path: str, csrf: str, **data: object):  # type: ignore[no-untyped-def]
    return client.post(
        path, data={"csrf_token": csrf, **data}, headers={"Origin": ORIGIN}, follow_redirects=False
    )


def test_overview_shows_revenue_and_each_jobs_last_run_with_a_warning(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    past_due_customer()
    record_run(
        "reconcile-stripe-events",
        jobs.FAILED,
        NOW - timedelta(hours=3, minutes=1),
        "StripeUnavailableError: Stripe answered 503",
    )
    page = client.get("/console/").text
    assert "Monthly recurring revenue" in page and "$29.00" in page  # past_due still recurring
    assert 'id="job-reconcile-stripe-events" class="late"' in page
    assert "no success since it was first seen 3 h ago" in page
    assert "Stripe answered 503" in page
    assert "job-rollup-usage-daily" in page and "daily at 00:15" in page
    assert "1 payment failed ($29.00)" in page


def test_at_risk_lists_the_past_due_customer_with_the_amount_due(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = past_due_customer()
    page = client.get("/console/at-risk").text
    assert f'href="/console/customers/{customer_id}">Late GmbH' in page
    assert "Payment failed (1, $29.00 due)" in page
    assert "No open disputes." in page


def test_resolving_a_billing_issue_is_audited(operator) -> None:  # type: ignore[no-untyped-def]
    client, csrf = operator
    with session_scope() as session:
        customer_id = create_customer(session, email="ops@acme.io").customer_id
        issue = issues.record_dispute(session, customer_id, {"id": "dp_1", "charge": "ch_1"})
        issue_id = issue.id
    assert "dp_1" in client.get("/console/billing-issues").text

    blank = _post(client, f"/console/billing-issues/{issue_id}/resolve", csrf, note=" ")
    assert blank.status_code == 422 and "note" in blank.text

    done = _post(
        client, f"/console/billing-issues/{issue_id}/resolve", csrf, note="won", confirm="yes"
    )
    assert done.status_code == 303
    resolved = client.get(done.headers["location"]).text
    assert "by alice@ops" in resolved and "“won”" in resolved
    with session_scope() as session:
        entry = audit.list_entries(session, audit.AuditFilter(customer_id=customer_id))[0]
        assert (entry.action, entry.actor, entry.reason) == (
            "billing_issue.resolve",
            "alice@ops",
            "won",
        )


def test_a_viewer_sees_no_action_and_cannot_process_an_event(viewer) -> None:  # type: ignore[no-untyped-def]
    client, csrf = viewer
    with session_scope() as session:
        inbox.store_event(
            session,
            {
                "id": "evt_x",
                "object": "event",
                "type": "customer.updated",
                "created": 1_800_000_000,
                "data": {"object": {}},
            },
        )
    page = client.get("/console/events/evt_x").text
    assert "Process again" not in page and "customer.updated" in page
    refused = _post(client, "/console/events/evt_x/process", csrf)
    assert refused.status_code == 403
    with session_scope() as session:
        row = session.scalar(select(StripeEvent).where(StripeEvent.event_id == "evt_x"))
        assert row is not None and row.attempts == 0


def test_meter_events_page_and_send_again(operator, celery_worker) -> None:  # type: ignore[no-untyped-def]
    client, csrf = operator
    with session_scope() as session:
        customer_id = create_customer(session, email="meter@acme.io").customer_id
        event = OverageMeterEvent(
            customer_id=customer_id,
            day=NOW.date() - timedelta(days=1),
            sequence=0,
            value=3,
            plan="starter",
            stripe_customer_id="cus_gone",
            event_name="zemfyre_device_overage",
            identifier=f"{customer_id}-yesterday",
            failed_at=NOW,
            refusals=5,
            last_error="No such customer: 'cus_gone'",
        )
        session.add(event)
        session.flush()
        event_id = event.id
    page = client.get("/console/meter-events").text
    assert "meter@acme.io" in page and "No such customer" in page and "Send again" in page
    assert f"Event #{event_id} <strong>failed</strong>: 3 device-days" in page
    assert f"meter identifier <code>{customer_id}-yesterday</code>" in page
    assert "Stripe refused it: No such customer" in page

    done = _post(client, "/console/meter-events/send-again", csrf, event_id=event_id)
    assert done.status_code == 303 and "done=sent&count=1" in done.headers["location"]
    with session_scope() as session:
        row = session.get(OverageMeterEvent, event_id)
        assert row is not None and row.failed_at is None and row.refusals == 0
        entries = audit.list_entries(session, audit.AuditFilter(actor="alice@ops"))
        assert [(e.action, e.customer_id, e.after) for e in entries] == [
            ("meter_event.retry", customer_id, {"event_ids": [event_id]})
        ]
    page = client.get("/console/meter-events").text
    assert f"Event #{event_id} <strong>unsent</strong>" in page
    assert "earlier attempt (before it was sent again): No such customer" in page


def test_overview_flags_jobs_never_run_and_counts_failed_events_apart(
    operator, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    # One job ran an hour ago; the service has been up for two days: the hourly jobs never
    # run since are late, though the jobs' records are younger than two of their intervals.
    monkeypatch.setattr(jobs, "SERVICE_STARTED_AT", NOW - timedelta(days=2))
    record_run("expire-trials", jobs.SUCCEEDED, NOW - timedelta(minutes=61))
    with session_scope() as session:
        for number, status in enumerate((inbox.PENDING, inbox.FAILED, inbox.FAILED)):
            session.add(
                StripeEvent(
                    event_id=f"evt_overview_{number}",
                    type="invoice.paid",
                    payload={},
                    stripe_created=int(NOW.timestamp()),
                    status=status,
                )
            )
    page = client.get("/console/").text
    assert 'id="job-renew-licenses" class="late"' in page
    assert "never run since the service started 2 days ago" in page
    assert '<a href="/console/events?state=waiting">1 Stripe event</a>' in page
    assert 'href="/console/events?state=failed">2 failed for good</a>' in page
    assert '<a href="/console/customers?status=trialing">Trials ending in 3 days</a>' in page


def test_processing_again_says_why_an_event_was_ignored(operator) -> None:  # type: ignore[no-untyped-def]
    client, csrf = operator
    with session_scope() as session:
        for event_id, status in (("evt_ignored_1", inbox.FAILED), ("evt_old_1", inbox.PROCESSED)):
            session.add(
                StripeEvent(
                    event_id=event_id,
                    type="product.created",
                    payload={"id": event_id, "type": "product.created", "data": {"object": {}}},
                    stripe_created=int(NOW.timestamp()),
                    status=status,
                    processed_at=NOW if status == inbox.PROCESSED else None,
                    last_error="boom" if status == inbox.FAILED else None,
                )
            )
    done = _post(client, "/console/events/evt_ignored_1/process", csrf)
    assert done.status_code == 303
    page = client.get(done.headers["location"]).text
    assert "Processed again: ignored — product.created needs no action." in page
    old = client.get("/console/events/evt_old_1").text
    assert "no attempt was recorded for it" in old and "Not handled yet" not in old


def test_the_events_customer_filter_takes_a_name_or_a_stripe_id(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = past_due_customer()  # Late GmbH, evt_failed_1 handled for it
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id="cus_lateWalk")
        )
    for typed in ("late gmbh", "cus_lateWalk", customer_id):
        page = client.get("/console/events", params={"customer": typed}).text
        assert "evt_failed_1" in page, typed
    page = client.get("/console/events", params={"customer": "Nobody Inc"}).text
    assert 'id="customer-note">No customer' in page and "contains “Nobody Inc”." in page
    assert "evt_failed_1" not in page


def test_the_overview_of_an_empty_service_says_where_customers_come_from(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    page = client.get("/console/").text
    assert 'id="no-customers"' in page and "billing customer add" in page
    past_due_customer()
    assert 'id="no-customers"' not in client.get("/console/").text
