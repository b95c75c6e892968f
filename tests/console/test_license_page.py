"""A license's page, reached from the customer's timeline: whose it is, the key that signed it
(kid), whether it is current, replaced or revoked; never its token."""

from __future__ import annotations

import re

from sqlalchemy import select

from core.db import session_scope
from models import License
from tests.console.conftest import seed_customer


def _licenses(customer_id: str) -> list[License]:
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(License).where(License.customer_id == customer_id).order_by(License.id)
            )
        )
        session.expunge_all()
        return rows


def test_the_timeline_links_each_license_and_shows_its_kid(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}?show=license").text
    timeline = page[page.index('id="timeline"') :]
    for row in _licenses(seeded.customer_id):
        link = re.search(
            rf'<a href="/console/licenses/{row.jti}"[^>]*>.*?</a>\s*'
            rf'<span class="muted nowrap">kid <code>.*?{re.escape(row.kid)}.*?</code></span>',
            timeline,
            re.S,
        )
        assert link, f"license {row.jti} is not linked with its kid"


def test_the_license_page_says_what_it_is_and_whose(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    first, *_, current = _licenses(seeded.customer_id)
    page = client.get(f"/console/licenses/{current.jti}").text
    assert f'<a href="/console/customers/{seeded.customer_id}">Acme GmbH</a>' in page
    assert re.search(r"data-license-state>current<", page)
    assert f"<code data-kid>{current.kid}</code>" in page
    assert "the active signing key" in page
    assert current.token not in page  # the customer's credential is never shown
    replaced = client.get(f"/console/licenses/{first.jti}").text
    assert re.search(r"data-license-state>replaced<", replaced)
    assert client.get("/console/licenses/nosuchjti").status_code == 404


def test_a_revoked_license_names_who_revoked_it_and_its_audit_entry(operator) -> None:
    from core import audit
    from tests.console.conftest import ORIGIN

    client, csrf = operator
    seeded = seed_customer()
    held = [row.jti for row in _licenses(seeded.customer_id)]
    client.post(
        f"/console/customers/{seeded.customer_id}/revoke",
        data={"csrf_token": csrf, "reason": "chargeback", "confirm": seeded.customer_id},
        headers={"Origin": ORIGIN},
    )
    with session_scope() as session:
        entry = audit.list_entries(session, audit.AuditFilter(customer_id=seeded.customer_id))[0]
        entry_id, after = entry.id, entry.after or {}
    # The entry names the licenses it revoked, not only the new one that says revoked.
    assert sorted(after["revoked_jtis"]) == sorted(held)
    says_revoked = _licenses(seeded.customer_id)[-1].jti
    assert after["says_revoked_jti"] == says_revoked and says_revoked not in held

    link = (
        f'by alice@ops · <a href="/console/audit?customer={seeded.customer_id}'
        f'&amp;before={entry_id + 1}#audit-{entry_id}">audit #{entry_id}</a>'
    )
    for jti in (held[0], says_revoked):  # revoked then, and issued while revoked
        text = client.get(f"/console/licenses/{jti}").text
        assert link in text, text[text.find("<main") :][:1500]
    customer_page = client.get(f"/console/customers/{seeded.customer_id}").text
    banner = customer_page[customer_page.index("<strong>License revoked</strong>") :]
    assert link in banner.split("</div>")[0]
    audit_page = client.get(f"/console/audit?customer={seeded.customer_id}&before={entry_id + 1}")
    assert f'id="audit-{entry_id}"' in audit_page.text


def test_no_page_shows_any_part_of_a_license_token(operator) -> None:
    """Not the token, nor any piece of one: every JWT's header and payload begin with "eyJ"
    (base64 of '{"'), so no such fragment may appear on the pages around a license."""
    from models import StripeEvent

    client, _ = operator
    seeded = seed_customer()
    licenses = _licenses(seeded.customer_id)
    assert all(row.token.startswith("eyJ") for row in licenses)  # what is looked for
    with session_scope() as session:
        event_id = session.scalars(
            select(StripeEvent.event_id).where(StripeEvent.customer_id == seeded.customer_id)
        ).one()
    for path in (
        *(f"/console/licenses/{row.jti}" for row in licenses),
        f"/console/events/{event_id}",
        f"/console/customers/{seeded.customer_id}",
        f"/console/customers/{seeded.customer_id}?show=license",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "eyJ" not in answer.text, f"{path} shows a JWT-looking fragment"
        for row in licenses:
            assert row.token[-43:] not in answer.text, f"{path} shows a token's signature"
