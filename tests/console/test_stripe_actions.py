"""The customer page's Stripe actions, against the Stripe stand-in: cancel at period end, and the
customer portal link."""

from __future__ import annotations

from tests.conftest import pg_scalar
from tests.console.conftest import ORIGIN, seed_customer
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    new_customer,
    start_checkout,
    stripe_subscription,
    subscription_row,
)


def test_cancel_at_period_end_and_the_portal(stand_in, operator) -> None:
    client, csrf = operator
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, "starter"))
    assert subscription_row(customer_id)["status"] == "active"
    page = client.get(f"/console/customers/{customer_id}").text
    assert f'href="/console/customers/{customer_id}/cancel">Cancel at period end</a>' in page
    assert ">Stripe portal ↗</button>" in page

    # A confirmation step first: what it does, and a reason for the audit log.
    confirm = client.get(f"/console/customers/{customer_id}/cancel").text
    assert "stops renewing: no renewal invoice comes" in confirm
    assert "Access to starter ends" in confirm and 'name="reason"' in confirm
    no_reason = client.post(
        f"/console/customers/{customer_id}/cancel",
        data={"csrf_token": csrf, "reason": " "},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    assert stripe_subscription(stand_in, customer_id)["cancel_at_period_end"] is False

    done = client.post(
        f"/console/customers/{customer_id}/cancel",
        data={"csrf_token": csrf, "reason": "asked by phone"},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert stripe_subscription(stand_in, customer_id)["cancel_at_period_end"] is True
    assert subscription_row(customer_id)["cancel_at_period_end"] is True
    assert (
        pg_scalar(
            "SELECT actor || '|' || action || '|' || reason FROM audit_log "
            "WHERE action LIKE 'subscription.%' ORDER BY id DESC LIMIT 1"
        )
        == "alice@ops|subscription.cancel_at_period_end|asked by phone"
    )
    page = client.get(done.headers["location"]).text
    assert "set to cancel at the end of its paid period" in page
    assert ">Cancel at period end</a>" not in page

    portal = client.post(
        f"/console/customers/{customer_id}/portal",
        data={"csrf_token": csrf},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert portal.status_code == 303
    url = portal.headers["location"]
    assert url.startswith("https://billing.stripe.com/")
    created = [r for r in stand_in.requests if r.path.endswith("/billing_portal/sessions")]
    assert created and f"/console/customers/{customer_id}" in str(created[-1].params)


def test_stripe_unavailable_is_said_on_the_customer_page(operator) -> None:
    """Without Stripe (no key here) cancel and portal change nothing and say why on the customer
    page, with the navigation, instead of a bare error page."""
    client, csrf = operator
    customer_id = seed_customer().customer_id
    for action, data in (("cancel", {"reason": "asked"}), ("portal", {})):
        answer = client.post(
            f"/console/customers/{customer_id}/{action}",
            data={"csrf_token": csrf, **data},
            headers={"Origin": ORIGIN},
            follow_redirects=False,
        )
        assert answer.status_code == 503
        assert "Nothing changed: Stripe is not configured" in answer.text
        assert 'href="/console/at-risk"' in answer.text and "<h1>Acme GmbH</h1>" in answer.text
    assert subscription_row(customer_id)["cancel_at_period_end"] is False
