"""The customer page's Stripe actions, against the Stripe stand-in: cancel at period end, and the
customer portal link."""

from __future__ import annotations

from tests.conftest import pg_scalar
from tests.console.conftest import ORIGIN
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
    assert ">Cancel at period end</button>" in page and ">Stripe portal ↗</button>" in page

    done = client.post(
        f"/console/customers/{customer_id}/cancel",
        data={"csrf_token": csrf},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert stripe_subscription(stand_in, customer_id)["cancel_at_period_end"] is True
    assert subscription_row(customer_id)["cancel_at_period_end"] is True
    assert (
        pg_scalar(
            "SELECT actor || '|' || action FROM audit_log "
            "WHERE action LIKE 'subscription.%' ORDER BY id DESC LIMIT 1"
        )
        == "alice@ops|subscription.cancel_at_period_end"
    )
    page = client.get(done.headers["location"]).text
    assert "set to cancel at the end of its paid period" in page
    assert ">Cancel at period end</button>" not in page

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
