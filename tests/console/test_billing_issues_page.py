"""Billing issues: resolving a dispute Stripe still has open asks first and leaves it on Money at
risk (which reads Stripe's status); the Open/Resolved links say which view is current."""

from __future__ import annotations

import re

from sqlalchemy import select

from core import audit
from core.billing import issues
from core.customers.service import create_customer
from core.db import session_scope
from models import BillingIssue
from tests.console.conftest import ORIGIN


def _resolve(client, csrf: str, issue_id: int, **data: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/console/billing-issues/{issue_id}/resolve",
        data={"csrf_token": csrf, **data},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )


def _dispute(status: str) -> tuple[str, int]:
    with session_scope() as session:
        customer_id = create_customer(session, email="ops@acme.io").customer_id
        dispute = {"id": "dp_1", "charge": "ch_1", "amount": 9900, "status": status}
        return customer_id, issues.record_dispute(session, customer_id, dispute).id


def _resolved_at(issue_id: int) -> object:
    with session_scope() as session:
        return session.scalar(select(BillingIssue.resolved_at).where(BillingIssue.id == issue_id))


def test_resolving_a_dispute_stripe_keeps_open_shows_the_impact_and_asks(operator) -> None:  # type: ignore[no-untyped-def]
    client, csrf = operator
    customer_id, issue_id = _dispute("needs_response")

    asked = _resolve(client, csrf, issue_id, note="customer called")
    assert asked.status_code == 200 and _resolved_at(issue_id) is None
    impact = asked.text[asked.text.index('id="impact"') :]
    assert "Stripe still has this dispute open" in impact and "needs_response" in impact
    assert "$99.00" in impact and "stays listed on" in impact
    assert 'name="confirm" value="yes"' in asked.text and 'value="customer called"' in asked.text

    done = _resolve(client, csrf, issue_id, note="customer called", confirm="yes")
    assert done.status_code == 303 and _resolved_at(issue_id) is not None
    with session_scope() as session:
        entry = audit.list_entries(session, audit.AuditFilter(customer_id=customer_id))[0]
        assert entry.action == "billing_issue.resolve"
        assert (entry.after or {}).get("open_in_stripe") == "needs_response"

    empty = client.get("/console/billing-issues").text
    assert "No open billing issues here." in empty and "no charge is disputed" not in empty
    # Money at risk reads Stripe's status: the dispute is still there, said resolved here.
    risk = client.get("/console/at-risk").text
    disputes = risk[risk.index('id="disputes"') :].split("</section>")[0]
    assert "Open disputes (1)" in disputes and "dp_1" in disputes
    assert "resolved here by alice@ops; still open in Stripe" in disputes
    assert "1 dispute" in client.get("/console/").text


def test_a_dispute_stripe_closed_leaves_money_at_risk_and_other_issues_resolve_at_once(
    operator,
) -> None:  # type: ignore[no-untyped-def]
    client, csrf = operator
    customer_id, _ = _dispute("needs_response")
    with session_scope() as session:  # Stripe closed it (charge.dispute.closed), won
        issues.record_dispute(session, None, {"id": "dp_1", "charge": "ch_1", "status": "won"})
        refused = issues.record_refused_promotion(
            session, customer_id, "sub_1", "promo_1", "expired"
        ).id
    assert "No open disputes." in client.get("/console/at-risk").text
    blank = _resolve(client, csrf, refused, note=" ")
    assert blank.status_code == 422 and "note" in blank.text
    assert _resolve(client, csrf, refused, note="refunded the difference").status_code == 303
    assert _resolved_at(refused) is not None


def test_the_open_and_resolved_links_say_which_view_is_current(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    for query, current, other in (("", "Open", "Resolved"), ("?resolved=true", "Resolved", "Open")):
        page = client.get(f"/console/billing-issues{query}").text
        assert re.search(rf'<a href="[^"]*" aria-current="page">{current}</a>', page)
        assert not re.search(rf'aria-current="page">{other}</a>', page)
    css = client.get("/console/static/console.css").text
    assert '.view-switch a[aria-current="page"]' in css
