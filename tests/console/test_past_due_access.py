"""When a past_due customer's access ends: Money at risk and the customer page say one date
(`entitlements.access_end`), and the page says "ended" once it has passed, with the grace used."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.db import session_scope
from models import Subscription, utcnow
from tests.console.operations_data import past_due_customer


def _trial_ended(customer_id: str, days_ago: int) -> None:
    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(trial_ends_at=utcnow() - timedelta(days=days_ago))
        )


def _at_risk_row(client, customer_id: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/console/at-risk").text
    return page[page.index(f"/console/customers/{customer_id}") :].split("</tr>")[0]


def test_a_failed_first_charge_ended_access_on_both_pages(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = past_due_customer()  # paid through 2 days ago
    _trial_ended(customer_id, 1)  # nothing paid since the trial: no grace
    ended = (utcnow() - timedelta(days=2)).strftime("%-d %b %Y")

    row = _at_risk_row(client, customer_id)
    assert "2 d ago" in row and "in 5 d" not in row
    page = client.get(f"/console/customers/{customer_id}").text
    notice = page[page.index('id="past-due-notice"') :].split("</p>")[0]
    assert "Access ended <span" in notice and f">{ended}</span>" in notice
    assert "+ 0 d past-due grace (none: nothing was paid since the trial" in notice
    assert "unless paid" not in notice
    assert f'<dt>Access ended</dt><dd class="warn">{ended}</dd>' in page


def test_a_failed_renewal_ends_access_after_the_grace_on_both_pages(operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = past_due_customer()
    _trial_ended(customer_id, 60)  # a renewal failed: 7 days of past-due grace
    ends = (utcnow() - timedelta(days=2) + timedelta(days=7)).strftime("%-d %b %Y")

    assert "in 5 d" in _at_risk_row(client, customer_id)
    page = client.get(f"/console/customers/{customer_id}").text
    notice = page[page.index('id="past-due-notice"') :].split("</p>")[0]
    assert "Access ends <span" in notice and f">{ends}</span>" in notice
    assert "unless paid" in notice and "+ 7 d past-due grace." in notice
