"""The audit page: who did what, newest first, filtered by customer and actor."""

from __future__ import annotations

from core import audit
from core.db import session_scope
from core.logging import request_id_var
from tests.console.conftest import ORIGIN, seed_customer


def _record(actor: str, action: str, customer_id: str | None, reason: str | None = None) -> None:
    with session_scope() as session:
        audit.act_as(session, actor)
        audit.record(session, action, customer_id=customer_id, reason=reason)


def test_a_console_revocation_appears_first_with_its_actor_and_reason(operator) -> None:
    client, csrf = operator
    seeded = seed_customer()
    client.post(
        f"/console/customers/{seeded.customer_id}/revoke",
        data={"csrf_token": csrf, "reason": "chargeback", "confirm": seeded.customer_id},
        headers={"Origin": ORIGIN},
    )
    page = client.get("/console/audit").text
    first = page[page.index("<tbody>") :].split("</tr>")[0]
    assert "alice@ops" in first and "license.revoke" in first and "chargeback" in first
    assert seeded.customer_id in first and "revoked_at: none →" in first


def test_filters_by_customer_and_actor(operator) -> None:
    client, _ = operator
    _record("alice@ops", "license.reissue", "cust_a", "lost copy")
    _record("cli:bob", "license.revoke", "cust_b", "fraud")
    _record("cli:bob", "apikey.create", None)
    page = client.get("/console/audit", params={"customer": "cust_b"}).text
    assert "fraud" in page and "lost copy" not in page and "apikey.create" not in page
    page = client.get("/console/audit", params={"actor": "cli:bob"}).text
    assert "fraud" in page and "apikey.create" in page and "lost copy" not in page
    assert '<option value="alice@ops">' in page and '<option value="cli:bob" selected>' in page
    empty = client.get("/console/audit", params={"customer": "cust_none"}).text
    assert "No audit entries match these filters" in empty


def test_pages_of_fifty_newest_first(operator) -> None:
    client, _ = operator
    with session_scope() as session:
        for number in range(55):
            audit.record(session, "license.reissue", customer_id=f"cust_{number:02d}")
    first = client.get("/console/audit").text
    assert first.count('<tr id="audit-') == 50
    assert "cust_54" in first and "cust_04" not in first
    older = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(older.replace("&amp;", "&")).text
    # The other 5, and the creation of the key the operator signed in with.
    assert second.count('<tr id="audit-') == 6 and "cust_00" in second
    assert "apikey.create" in second


def test_a_nul_byte_in_a_filter_is_a_422_page(operator) -> None:
    client, _ = operator
    answer = client.get("/console/audit", params={"actor": "\x00"})
    assert answer.status_code == 422 and "actor must not contain a NUL byte" in answer.text


def test_entries_read_as_people_read_them(operator) -> None:
    """Values as text and times (no JSON escapes), the customer's company, the event a step was
    about as a link, and the whole request id."""
    client, _ = operator
    seeded = seed_customer(company="Bäckerei Jo & Co")
    token = request_id_var.set("72394a4f54aa00110000000000000abc")
    with session_scope() as session:
        audit.act_as(session, "alice@ops")
        entry = audit.record(
            session,
            "customer.update",
            customer_id=seeded.customer_id,
            before={"company_name": "Wren & Co", "revoked_at": "2026-12-07T16:22:35.303490+00:00"},
            after={"company_name": "Bäckerei Jo & Co", "revoked_at": None},
        )
        audit.record(session, "stripe_event.replay", after={"event_id": "evt_walk1"})
        request_id_var.reset(token)
    page = client.get("/console/audit").text
    row = page[page.index(f'<tr id="audit-{entry.id}">') :].split("</tr>")[0]
    assert "company_name: Wren &amp; Co → Bäckerei Jo &amp; Co" in row
    assert "revoked_at: 2026-12-07 16:22 UTC → none" in row
    assert "\\u00" not in row and "\\u0026" not in row
    assert f'title="{seeded.customer_id}">Bäckerei Jo &amp; Co</a>' in row
    # The whole request id, selected whole with one click (to search the logs with).
    assert '<code class="request-id">72394a4f54aa00110000000000000abc</code>' in row
    assert "code.request-id { user-select: all;" in client.get("/console/static/console.css").text
    assert 'event <a href="/console/events/evt_walk1"><code>evt_walk1</code></a>' in page
