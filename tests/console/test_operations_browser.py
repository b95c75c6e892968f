"""The operations pages in Chromium against `billing api` in its own process: a past_due customer
on the at-risk page, a failed Stripe event processed again once its cause is fixed (and audited),
the day's meter event, the next invoice's lines with a flagged disagreement, each scheduled
job's last run and a warning after one fails. Screenshots: tests/console/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import update

from core import audit
from core.billing import invoice_preview
from core.db import session_scope
from core.usage.parsing import ReportInput
from models import JobRun, Subscription, utcnow
from tests.conftest import pg_scalar
from tests.console.browser import chromium, live_console, needs_chromium, screenshot, signed_in
from tests.console.conftest import new_key
from tests.console.operations_data import past_due_customer
from tests.helpers.failed_events import failed_checkout_event
from tests.helpers.reports import store_report
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, new_customer, start_checkout

pytestmark = needs_chromium


def _expect():  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    return expect


def _starter_with_devices(stand_in, devices: int, at: datetime) -> str:  # type: ignore[no-untyped-def]
    invoice_preview.clear_cache()
    customer_id = new_customer(email=f"edge-{devices}@acme.io", company="Acme GmbH")
    handle_inline(start_checkout(stand_in, customer_id, plan="starter"))
    with session_scope() as session:
        store_report(
            session, ReportInput(customer_id, "edge-berlin", devices, devices, at), license_jti=None
        )
    return customer_id


def test_a_past_due_customer_is_at_risk_with_the_amount_due() -> None:
    expect = _expect()
    customer_id = past_due_customer()
    with live_console() as url, chromium() as browser:
        page = signed_in(browser, url, new_key("alice@ops"))
        page.get_by_role("link", name="At risk", exact=True).click()
        row = page.locator("#failed-payments tbody tr", has_text="Late GmbH")
        expect(row).to_contain_text("past_due")
        expect(row.locator("[data-amount-due]")).to_contain_text("$29.00")
        expect(page.locator("#failed-payments h2")).to_contain_text("$29.00 due")
        screenshot(page, "at-risk")
        row.get_by_role("link", name="Late GmbH").click()
        page.wait_for_url(f"**/console/customers/{customer_id}")


def test_a_failed_stripe_event_is_processed_again_and_audited(
    stand_in, api_client, celery_worker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    customer_id, completed = failed_checkout_event(
        stand_in, api_client, monkeypatch, email="buyer@acme.io", company="Acme GmbH"
    )
    # The cause is fixed: Stripe answers again (failed_checkout_event brought it back).
    with live_console() as url, chromium() as browser:
        page = signed_in(browser, url, new_key("alice@ops"))
        page.goto(f"{url}/console/events?state=failed")
        page.locator(f'a[href="/console/events/{completed["id"]}"]').click()
        expect(page.locator("[data-event-status]")).to_have_text("failed")
        expect(page.locator("#attempts")).to_contain_text("503")
        screenshot(page, "event-failed")

        page.get_by_role("button", name="Process again").click()
        expect(page.locator("[data-event-status]")).to_have_text("processed")
        expect(page.get_by_role("status")).to_contain_text("Processed again")
        expect(page.locator("#attempts tbody tr").last).to_contain_text("console · alice@ops")
        expect(page.locator("section.card", has_text="License it changed")).to_contain_text(
            "starter"
        )
        screenshot(page, "event-processed")

        # The license it issued, by its jti; then the list, sorted by type, names the company.
        page.locator("section.card", has_text="License it changed").locator("a").first.click()
        expect(page.locator("[data-license-state]")).to_have_text("current")
        screenshot(page, "license")
        page.goto(f"{url}/console/events")
        page.get_by_role("link", name="Type").click()
        expect(page.locator("th[aria-sort]")).to_contain_text("Type")
        expect(page.locator("table.list")).to_contain_text("Acme GmbH")
        screenshot(page, "events")

    row = pg_scalar(f"SELECT status FROM subscriptions WHERE customer_id = '{customer_id}'")
    assert row == "active"
    with session_scope() as session:
        entries = audit.list_entries(session, audit.AuditFilter(actor="alice@ops"))
        assert [(e.action, e.customer_id, (e.after or {}).get("status")) for e in entries] == [
            ("stripe_event.replay", customer_id, "processed")
        ]


def test_the_days_meter_event_is_shown(stand_in, celery_worker) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    from tasks.billing import meter_usage

    yesterday = utcnow().date() - timedelta(days=1)
    noon = datetime.combine(yesterday, time(12), tzinfo=UTC)
    customer_id = _starter_with_devices(stand_in, 14, noon)
    with session_scope() as session:
        # Paid since before yesterday, so yesterday's overage is billed.
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(metered_since=noon - timedelta(days=2))
        )
    answer = meter_usage.apply_async(args=[yesterday.isoformat()]).get(timeout=60)
    assert answer["sent"] == 1, answer

    with live_console() as url, chromium() as browser:
        page = signed_in(browser, url, new_key("alice@ops"))
        page.get_by_role("link", name="Meter events").click()
        link = page.locator(f'a[href="/console/customers/{customer_id}"]')
        row = page.locator("#meter-days tbody tr", has=link)
        expect(link).to_have_text("Acme GmbH")  # the company, its email and id in the title
        expect(row).to_contain_text(f"{yesterday.day} {yesterday:%b %Y}")
        expect(row.locator("td.num").first).to_have_text("4")
        expect(row).to_contain_text("sent")
        # Sorted by a header's link, the current sort marked.
        page.get_by_role("link", name="Device-days").click()
        page.wait_for_url("**sort=-device_days**")
        header = page.locator("#meter-days th[aria-sort]")
        expect(header).to_have_attribute("aria-sort", "descending")
        expect(header).to_contain_text("Device-days")
        screenshot(page, "meter-events")


def test_the_next_invoice_shows_stripes_lines_and_a_disagreement(stand_in) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    customer_id = _starter_with_devices(stand_in, 14, utcnow())
    with live_console() as url, chromium() as browser:
        page = signed_in(browser, url, new_key("alice@ops"))
        page.goto(f"{url}/console/customers/{customer_id}")
        panel = page.locator("#next-invoice")
        expect(panel.locator("table.lines")).to_be_visible()
        expect(panel.locator("tr.line-flat")).to_contain_text("$29.00")
        expect(panel.locator("tr.line-overage")).to_contain_text("$0.00")
        expect(panel.locator("[data-stripe-total]")).to_contain_text("$29.00")
        expect(panel.locator("[data-our-total]")).to_contain_text("$29.40")
        expect(panel.locator("[data-disagreement]")).to_contain_text("differ by -$0.40")
        expect(panel).to_contain_text("Stripe has 0 device-day(s), we count 4")
        panel.scroll_into_view_if_needed()
        screenshot(page, "next-invoice")


def test_each_jobs_last_run_and_a_warning_after_one_fails(celery_worker) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    from tasks.usage import rollup_usage_day, sweep_pending_reports

    sweep_pending_reports.apply_async().get(timeout=30)
    rollup_usage_day.apply_async(args=[(utcnow().date() - timedelta(days=1)).isoformat()]).get(
        timeout=30
    )
    wait_until(
        lambda: pg_scalar("SELECT count(*) FROM job_runs WHERE last_finished_at IS NOT NULL") == 2
    )
    # The sweepers run every 10 minutes here, so none is late while the test runs.
    env = {"INBOX_SWEEP_INTERVAL_SECONDS": "600"}
    with live_console(env) as url, chromium() as browser:
        page = signed_in(browser, url, new_key("alice@ops"))
        page.goto(f"{url}/console/")
        rollup = page.locator("#job-rollup-usage-daily")
        expect(rollup).to_contain_text("succeeded")
        expect(rollup).to_contain_text("daily at 00:15")
        expect(page.locator("#job-sweep-usage-reports")).to_contain_text("succeeded")
        expect(page.locator(".notice.problem")).to_have_count(0)
        screenshot(page, "overview-jobs")

        # The rollup fails, and has not succeeded for three days.
        rollup_usage_day.apply_async(args=["2026-02-30"]).get(timeout=30, propagate=False)
        wait_until(
            lambda: (
                pg_scalar("SELECT last_outcome FROM job_runs WHERE job = 'rollup-usage-daily'")
                == "failed"
            )
        )
        with session_scope() as session:
            session.execute(
                update(JobRun)
                .where(JobRun.job == "rollup-usage-daily")
                .values(last_succeeded_at=utcnow() - timedelta(days=3))
            )
        page.reload()
        expect(page.locator(".notice.problem")).to_contain_text("rollup-usage-daily")
        expect(rollup).to_contain_text("failed")
        expect(rollup).to_contain_text("no success within 2 intervals (last success 3 days ago)")
        expect(rollup).to_contain_text("2026-02-30")
        screenshot(page, "overview-job-warning")
