"""The customers list: search, filters, pages."""

from __future__ import annotations

from sqlalchemy import update


def _customers(count: int, **overrides: str) -> list[str]:
    from core.customers.service import create_customer
    from core.db import session_scope

    ids = []
    with session_scope() as session:
        for number in range(count):
            customer = create_customer(
                session,
                email=overrides.get("email", f"user{number}@example{number}.com"),
                company_name=overrides.get("company", f"Company {number}"),
            )
            ids.append(customer.customer_id)
    return ids


def test_search_matches_email_company_or_id_by_prefix_whatever_the_case(operator) -> None:
    client, _ = operator
    [acme] = _customers(1, email="ops@acme.example", company="Acme GmbH")
    [other] = _customers(1, email="it@globex.example", company="Globex")
    for q in ("OPS@AC", "acme g", acme[:10].upper()):
        page = client.get("/console/customers", params={"q": q}).text
        assert f"/console/customers/{acme}" in page, q
        assert f"/console/customers/{other}" not in page, q
        assert "1 customer matching" in page
    # Not a substring search, and % is no wildcard.
    for q in ("cme", "%"):
        page = client.get("/console/customers", params={"q": q}).text
        assert f"No customers match “{q}”" in page


def test_filters_by_plan_and_status(operator) -> None:
    from core.db import session_scope
    from models import Subscription

    client, _ = operator
    trialing, active = _customers(2)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == active)
            .values(plan="professional", status="active")
        )
    page = client.get("/console/customers", params={"plan": "professional"}).text
    assert active in page and trialing not in page
    page = client.get("/console/customers", params={"status": "trialing"}).text
    assert trialing in page and active not in page
    answer = client.get("/console/customers", params={"plan": "gold"})
    assert answer.status_code == 422 and "no plan" in answer.text


def test_fifty_a_page_newest_first(operator) -> None:
    client, _ = operator
    ids = _customers(51)
    first = client.get("/console/customers").text
    assert "51 customers" in first and "page 1 of 2" in first
    assert ids[-1] in first and ids[0] not in first
    assert first.count('<a href="/console/customers/cust_') == 50
    second = client.get("/console/customers", params={"page": 2}).text
    assert ids[0] in second and second.count('<a href="/console/customers/cust_') == 1


def test_htmx_gets_only_the_results(operator) -> None:
    client, _ = operator
    _customers(1, email="ops@acme.example")
    part = client.get("/console/customers", params={"q": "ops"}, headers={"HX-Request": "true"})
    assert "<html" not in part.text and "1 customer matching" in part.text


def test_canceling_and_revoked_are_badges_and_filters(operator) -> None:
    from core.db import session_scope
    from models import Customer, Subscription, utcnow

    client, _ = operator
    canceling, ended, revoked, plain = _customers(4)
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id.in_([canceling, ended]))
            .values(plan="professional", status="active", cancel_at_period_end=True)
        )
        # Set to cancel, and it has ended: no longer "canceling".
        session.execute(
            update(Subscription).where(Subscription.customer_id == ended).values(status="canceled")
        )
        session.execute(
            update(Customer)
            .where(Customer.customer_id == revoked)
            .values(license_revoked_at=utcnow(), license_revoked_reason="fraud")
        )
    page = client.get("/console/customers").text
    options = page[page.index('<select id="status"') :].split("</select>")[0]
    assert '<option value="canceling">' in options and '<option value="revoked">' in options

    def row(customer_id: str) -> str:
        return page[page.index(f"/console/customers/{customer_id}") :].split("</tr>")[0]

    assert ">canceling</span>" in row(canceling)
    assert ">canceling</span>" not in row(ended) and ">canceling</span>" not in row(plain)

    def filtered(status: str) -> set[str]:
        found = client.get("/console/customers", params={"status": status}).text
        return {c for c in (canceling, ended, revoked, plain) if f"/customers/{c}" in found}

    assert filtered("canceling") == {canceling}
    assert filtered("revoked") == {revoked}
