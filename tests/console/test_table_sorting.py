"""The console's tables sort by their main columns on the server: `sort=column` or
`sort=-column`, links in the headers (no JavaScript), the current sort shown."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from core.billing import inbox
from core.customers.service import create_customer
from core.db import session_scope
from models import BillingIssue, OverageMeterEvent, StripeEvent, utcnow

NOW = utcnow()


def _customers() -> dict[str, str]:
    """Company → customer id, created in this order: Beta, alpha, Gamma."""
    made = {}
    with session_scope() as session:
        for company, email in (("Beta", "c@x.io"), ("alpha", "b@x.io"), ("Gamma", "a@x.io")):
            made[company] = create_customer(session, email=email, company_name=company).customer_id
    return made


def _order(page: str, ids: dict[str, str], link: str = "/console/customers/") -> list[str]:
    """The companies in the order their rows' links appear on the page."""
    found = [(page.index(f'{link}{cid}"'), name) for name, cid in ids.items() if cid in page]
    return [name for _, name in sorted(found)]


def _header(page: str, label: str) -> str:
    found = re.search(rf"<th[^>]*>\s*<a[^>]*>{label}\b.*?</th>", page, re.S)
    assert found, f"no sortable header {label}"
    return found.group(0)


def test_customers_sort_by_company_email_and_creation(operator) -> None:
    client, _ = operator
    ids = _customers()
    newest = client.get("/console/customers").text
    assert _order(newest, ids) == ["Gamma", "alpha", "Beta"]
    assert 'aria-sort="descending"' in _header(newest, "Since")
    # The Company header links to the list sorted by it, ascending, filters kept.
    assert 'href="/console/customers?sort=company"' in _header(newest, "Company")
    by_company = client.get("/console/customers", params={"sort": "company"}).text
    assert _order(by_company, ids) == ["alpha", "Beta", "Gamma"]
    company = _header(by_company, "Company")
    assert 'aria-sort="ascending"' in company and "▲" in company
    assert 'href="/console/customers?sort=-company"' in company  # pressed again: descending
    assert 'name="sort" value="company"' in by_company  # the search form keeps the sort
    assert _order(client.get("/console/customers?sort=-company").text, ids) == [
        "Gamma",
        "Beta",
        "alpha",
    ]
    assert _order(client.get("/console/customers?sort=email").text, ids) == [
        "Gamma",
        "alpha",
        "Beta",
    ]
    searched = client.get("/console/customers", params={"q": "x.io", "sort": "company"})
    assert searched.status_code == 200
    refused = client.get("/console/customers", params={"sort": "password"})
    assert refused.status_code == 422


def test_stripe_events_sort_by_type_and_state_and_show_the_company(operator) -> None:
    client, _ = operator
    ids = _customers()
    with session_scope() as session:
        for number, kind in enumerate(("invoice.paid", "customer.updated", "invoice.paid")):
            inbox.store_event(
                session,
                {
                    "id": f"evt_{number}",
                    "object": "event",
                    "type": kind,
                    "created": 1_800_000_000 + number,
                    "data": {"object": {}},
                },
            )
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.event_id == "evt_1")
            .values(status=inbox.FAILED, customer_id=ids["Gamma"])
        )
    events = {f"evt_{n}": f"evt_{n}" for n in range(3)}
    newest = client.get("/console/events").text
    assert _order(newest, events, "/console/events/") == ["evt_2", "evt_1", "evt_0"]
    # The customer by company, linked to its page.
    assert f'<a href="/console/customers/{ids["Gamma"]}" title="{ids["Gamma"]}">Gamma</a>' in newest
    by_type = client.get("/console/events?sort=type").text
    assert _order(by_type, events, "/console/events/") == ["evt_1", "evt_0", "evt_2"]
    assert 'aria-sort="ascending"' in _header(by_type, "Type")
    by_state = client.get("/console/events?sort=-state").text
    assert _order(by_state, events, "/console/events/")[-1] == "evt_1"  # failed < pending
    assert client.get("/console/events?sort=id").status_code == 422


def test_meter_events_sort_by_device_days_and_customer(operator) -> None:
    client, _ = operator
    ids = _customers()
    with session_scope() as session:
        for company, value in (("Beta", 5), ("alpha", 9), ("Gamma", 1)):
            session.add(
                OverageMeterEvent(
                    customer_id=ids[company],
                    day=(NOW - timedelta(days=1)).date(),
                    value=value,
                    plan="starter",
                    stripe_customer_id=f"cus_{company}",
                    event_name="device_overage",
                    identifier=f"ovg-{company}",
                    sent_at=NOW,
                )
            )
    most = client.get("/console/meter-events?sort=-device_days").text
    assert _order(most, ids) == ["alpha", "Beta", "Gamma"]
    assert 'aria-sort="descending"' in _header(most, "Device-days")
    by_name = client.get("/console/meter-events?sort=customer").text
    assert _order(by_name, ids) == ["alpha", "Beta", "Gamma"]
    assert ">Gamma</a>" in by_name


def test_billing_issues_sort_by_amount_and_show_the_company(operator) -> None:
    client, _ = operator
    ids = _customers()
    with session_scope() as session:
        for company, cents in (("Beta", 2900), ("alpha", 9900), ("Gamma", 500)):
            session.add(
                BillingIssue(
                    kind="dispute",
                    customer_id=ids[company],
                    stripe_object_id=f"dp_{company}",
                    stripe_status="needs_response",
                    amount_cents=cents,
                    detail="disputed",
                )
            )
    oldest = client.get("/console/billing-issues").text
    assert _order(oldest, ids) == ["Beta", "alpha", "Gamma"]
    assert 'aria-sort="ascending"' in _header(oldest, "Since")
    assert f'title="{ids["alpha"]}">alpha</a>' in oldest
    biggest = client.get("/console/billing-issues?sort=-amount").text
    assert _order(biggest, ids) == ["alpha", "Beta", "Gamma"]
    assert _order(client.get("/console/billing-issues?sort=customer").text, ids) == [
        "alpha",
        "Beta",
        "Gamma",
    ]
