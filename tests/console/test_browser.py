"""The console in a real browser: Debian's Chromium driven by Playwright, against `billing api`
(uvicorn) on 127.0.0.1. Each page is saved as a PNG in tests/console/screenshots/ (git-ignored);
the customer page also as the tracked docs/images/console-customer.png, but only when
CONSOLE_DOCS_SCREENSHOT=1 asks for it (a test run must not rewrite a tracked file)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import pg_scalar
from tests.console.browser import chromium, live_console, needs_chromium, screenshot
from tests.console.conftest import new_key, seed_customer

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMAGE = ROOT / "docs" / "images" / "console-customer.png"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def console_url() -> Iterator[str]:
    with live_console() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    tab = context.new_page()
    yield tab
    context.close()


def _shot(page, name: str, *, also: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    screenshot(page, name)
    if also is not None and os.environ.get("CONSOLE_DOCS_SCREENSHOT") == "1":
        also.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(also), full_page=True)


def _sign_in(page, url: str, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/console/customers")
    assert page.url.startswith(f"{url}/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/console/customers")


def _revoked(customer_id: str) -> bool:
    return bool(
        pg_scalar(
            "SELECT license_revoked_at IS NOT NULL FROM customers "
            f"WHERE customer_id = '{customer_id}'"
        )
    )


def test_an_operator_finds_a_customer_revokes_and_signs_out(page, console_url: str) -> None:
    url = console_url
    seeded = seed_customer()
    for number in range(3):
        seed_customer(email=f"it{number}@globex{number}.example", company=f"Globex {number}")
    key = new_key("alice@ops")

    page.goto(f"{url}/console/customers")
    _shot(page, "01-sign-in")
    page.get_by_label("API key").fill("zbk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Invalid API key"
    _sign_in(page, url, key)
    assert page.locator("table.list tbody tr").count() == 4
    _shot(page, "02-customers")

    # Search as you type (htmx swaps the results in place).
    page.get_by_label("Search").fill("OPS@AC")
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    assert "1 customer matching" in page.locator("#results").inner_text()
    _shot(page, "03-search")
    page.get_by_role("link", name=seeded.customer_id).click()
    page.wait_for_url(f"{url}/console/customers/{seeded.customer_id}")

    # The chart: 30 days of bars against the dashed limit; the last three over it.
    assert page.locator("svg.chart rect.bar").count() == 30
    assert page.locator("svg.chart rect.bar.over").count() >= 3
    assert page.locator("svg.chart line.limit").get_attribute("data-limit") == "50"
    timeline = page.locator("#timeline").inner_text()
    for text in ("invoice.paid $99.00", "processed", "10 device-days", "lost copy"):
        assert text in timeline
    # The next invoice panel is loaded by htmx after the page: wait for it before the picture.
    expect(page.locator("#next-invoice")).to_contain_text("Our estimate")
    _shot(page, "04-customer", also=DOCS_IMAGE)

    # The timeline's filters swap only the timeline.
    page.get_by_role("link", name="payment", exact=True).click()
    expect(page.locator("#timeline")).not_to_contain_text("lost copy")
    assert "invoice.paid" in page.locator("#timeline").inner_text()

    # Revoke: the impact first, then a reason and the typed customer id.
    page.get_by_role("link", name="Revoke license").click()
    impact = page.locator("#impact").inner_text()
    assert "edge-berlin" in impact and "edge-munich" in impact and "next check-in" in impact
    _shot(page, "05-revoke-impact")
    page.get_by_label("Reason").fill("chargeback on in_123")
    page.get_by_label("Type the customer id to confirm").fill(seeded.customer_id)
    page.get_by_role("button", name="Revoke", exact=True).click()
    page.wait_for_url(f"{url}/console/customers/{seeded.customer_id}?done=revoked")
    assert "License revoked." in page.get_by_role("status").inner_text()
    assert _revoked(seeded.customer_id)
    _shot(page, "06-revoked")

    # The audit entry, newest first.
    page.get_by_role("link", name="Audit", exact=True).click()
    first = page.locator("table.list tbody tr").first.inner_text()
    assert "alice@ops" in first and "license.revoke" in first and "chargeback on in_123" in first
    _shot(page, "07-audit")

    # Sign out: the old cookie no longer opens anything.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "console_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{url}/console/login")
    page.context.add_cookies([cookie])
    page.goto(f"{url}/console/customers")
    assert page.url.startswith(f"{url}/console/login")
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    page, console_url: str
) -> None:
    url = console_url
    seeded = seed_customer()
    _sign_in(page, url, new_key("alice@ops"))
    page.goto(f"{url}/console/customers/{seeded.customer_id}/revoke")
    page.get_by_label("Reason").fill("no token")
    page.get_by_label("Type the customer id to confirm").fill(seeded.customer_id)
    # A forged form: the same fields, without the session's token.
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    page.get_by_role("button", name="Revoke", exact=True).click()
    assert "security token is missing" in page.get_by_role("alert").inner_text()
    _shot(page, "08-refused-csrf")
    assert not _revoked(seeded.customer_id)


def test_a_viewer_reads_but_cannot_change(page, console_url: str) -> None:
    url = console_url
    seeded = seed_customer()
    _sign_in(page, url, new_key("victor@support", "viewer"))
    page.goto(f"{url}/console/customers/{seeded.customer_id}")
    assert page.locator("svg.chart rect.bar").count() == 30
    assert page.get_by_role("button").all_inner_texts() == ["Sign out"]
    assert page.get_by_role("link", name="Revoke license").count() == 0
    _shot(page, "09-viewer")
    # Even with the session's own token, a viewer's change is refused.
    status = page.evaluate(
        """async (path) => {
            const token = document.querySelector('input[name=csrf_token]').value;
            const body = new URLSearchParams({csrf_token: token, reason: 'x', confirm: 'x'});
            const answer = await fetch(path, {method: 'POST', body});
            return answer.status;
        }""",
        f"/console/customers/{seeded.customer_id}/reissue",
    )
    assert status == 403
    assert (
        pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{seeded.customer_id}'") == 2
    )
