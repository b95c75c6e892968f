"""Checkout, upgrade and cancel through the API against the Stripe stand-in, with real webhooks,
a real worker and real licenses."""

from __future__ import annotations

from typing import Any

from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    deliver_all,
    handle_inline,
    license_claims,
    license_count,
    new_customer,
    subscription_row,
    wait_for_events,
)

SUCCESS = "https://app.zemfyre.com/success"
CANCEL = "https://app.zemfyre.com/pricing"


def checkout(client: Any, headers: dict[str, str], customer_id: str, plan: str, **extra: Any):
    body = {
        "customerId": customer_id,
        "plan": plan,
        "successUrl": SUCCESS,
        "cancelUrl": CANCEL,
        **extra,
    }
    return client.post("/api/subscriptions/create-checkout", json=body, headers=headers)


def test_whole_path_checkout_upgrade_cancel(stand_in, api_client, admin_headers, celery_worker):
    customer_id = new_customer()
    assert license_claims(customer_id)["plan"] == "trial"

    # Checkout: the Stripe customer is made once and remembered; the session names the buyer.
    response = checkout(api_client, admin_headers, customer_id, "starter")
    assert response.status_code == 200, response.text
    session_id, url = response.json()["sessionId"], response.json()["url"]
    assert session_id.startswith("cs_") and url.startswith("https://checkout.stripe.com/")
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    assert isinstance(stripe_customer, str) and stripe_customer.startswith("cus_")
    session = stand_in.client().v1.checkout.sessions.retrieve(session_id)
    assert session["metadata"].to_dict() == {"customerId": customer_id, "plan": "starter"}
    assert session["customer"] == stripe_customer
    assert session["allow_promotion_codes"] is True
    assert session["mode"] == "subscription"

    # The buyer pays; Stripe's events arrive signed, twice each, in a shuffled order.
    events = stand_in.complete_checkout(session_id)
    assert {e["type"] for e in events} >= {
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    }
    deliver_all(api_client, events, seed=1)
    wait_for_events([e["id"] for e in events])
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("starter", "active")
    assert row["stripe_subscription_id"].startswith("sub_")
    assert row["current_period_ends_at"] is not None
    claims = license_claims(customer_id)
    assert claims["plan"] == "starter"
    assert claims["subscription"]["status"] == "active"
    assert claims["trial"]["isTrialMode"] is False
    assert claims["features"]["maxDevices"] == 10
    assert license_count(customer_id) == 2  # trial, then starter: one reissue for one change

    # Upgrade: invoiced at once (always_invoice), granted because that invoice was paid.
    sub_id = row["stripe_subscription_id"]
    response = api_client.post(
        f"/api/subscriptions/{sub_id}/upgrade", json={"plan": "professional"}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["previousPlan"] == "starter"
    assert response.json()["plan"] == "professional"
    update = [r for r in stand_in.requests if r.method == "POST" and r.path.endswith(sub_id)][-1]
    assert update.params["proration_behavior"] == "always_invoice"
    assert update.params["payment_behavior"] == "pending_if_incomplete"
    assert update.idempotency_key
    assert response.json()["pendingPayment"] is False and response.json()["accessEndsAt"] is None
    upgrade_invoice = stand_in.events[-1]["data"]["object"]
    assert upgrade_invoice["billing_reason"] == "subscription_update"
    assert upgrade_invoice["status"] == "paid" and upgrade_invoice["amount_paid"] > 0
    claims = license_claims(customer_id)
    assert claims["plan"] == "professional" and claims["features"]["maxDevices"] == 50
    assert license_count(customer_id) == 3
    # Asking again changes nothing, in Stripe or locally.
    again = api_client.post(
        f"/api/subscriptions/{sub_id}/upgrade", json={"plan": "professional"}, headers=admin_headers
    )
    assert again.status_code == 200 and again.json()["licenseReissued"] is False
    upgrade_events = [e for e in stand_in.events if e["type"] == "customer.subscription.updated"]
    assert len(upgrade_events) == 1
    deliver_all(api_client, upgrade_events, seed=2)
    wait_for_events([e["id"] for e in upgrade_events])
    assert license_count(customer_id) == 3

    # Cancel at period end first (the default), then now.
    response = api_client.post(f"/api/subscriptions/{sub_id}/cancel", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["cancelAtPeriodEnd"] is True
    # The answer says when access ends: at the end of the period paid for.
    assert response.json()["accessEndsAt"] == response.json()["currentPeriodEndsAt"]
    assert subscription_row(customer_id)["status"] == "active"
    response = api_client.post(
        f"/api/subscriptions/{sub_id}/cancel", json={"immediately": True}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert response.json()["accessEndsAt"] == response.json()["canceledAt"]
    cancel = [r for r in stand_in.requests if r.method == "DELETE"][-1]
    assert (cancel.params["invoice_now"], cancel.params["prorate"]) == ("true", "true")
    cancel_events = [e for e in stand_in.events if e["type"] == "customer.subscription.deleted"]
    deliver_all(api_client, cancel_events, seed=3)
    wait_for_events([e["id"] for e in cancel_events])
    row = subscription_row(customer_id)
    assert (row["plan"], row["status"]) == ("professional", "canceled")
    assert row["canceled_at"] is not None
    claims = license_claims(customer_id)
    assert claims["subscription"]["status"] == "canceled"
    assert claims["plan"] == "professional"
    # Stored once per event however often delivered.
    assert pg_scalar("SELECT count(*) FROM stripe_events") == pg_scalar(
        "SELECT count(DISTINCT event_id) FROM stripe_events"
    )


def test_promo_code_is_applied_or_named_when_unknown(stand_in, api_client, admin_headers):
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon["id"]}, "code": "LAUNCH20"}
    )
    customer_id = new_customer()

    response = checkout(
        api_client, admin_headers, customer_id, "professional", promoCode="launch20"
    )
    assert response.status_code == 200, response.text
    session = client.v1.checkout.sessions.retrieve(response.json()["sessionId"])
    assert session["discounts"][0]["promotion_code"].startswith("promo_")
    assert session["amount_total"] == 9900 - 1980

    unknown = checkout(api_client, admin_headers, customer_id, "professional", promoCode="NOPE")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "promoCode"
    assert "NOPE" in unknown.json()["error"]["message"]


def test_checkout_input_errors_name_the_field(stand_in, api_client, admin_headers):
    customer_id = new_customer()
    bad_plan = checkout(api_client, admin_headers, customer_id, "platinum")
    assert bad_plan.status_code == 422 and bad_plan.json()["error"]["field"] == "plan"
    trial = checkout(api_client, admin_headers, customer_id, "trial")
    assert trial.status_code == 422 and trial.json()["error"]["field"] == "plan"
    unknown = checkout(api_client, admin_headers, "cust_doesnotexist0000", "starter")
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "customerId"
    missing = api_client.post(
        "/api/subscriptions/create-checkout",
        json={"customerId": customer_id, "plan": "starter"},
        headers=admin_headers,
    )
    assert missing.status_code == 422
    no_sub = api_client.post(
        "/api/subscriptions/sub_nothing/upgrade", json={"plan": "starter"}, headers=admin_headers
    )
    assert no_sub.status_code == 404
    # None of these made anything in Stripe.
    assert not [r for r in stand_in.requests if r.path == "/v1/checkout/sessions"]


def test_a_paying_customer_cannot_check_out_twice(stand_in, api_client, admin_headers):
    customer_id = new_customer()
    first = checkout(api_client, admin_headers, customer_id, "starter")
    stand_in.complete_checkout(first.json()["sessionId"])
    # The API call that follows does not wait for webhooks: sync through a replay of the events.
    handle_inline(stand_in.events, only=("checkout.session.completed",))
    second = checkout(api_client, admin_headers, customer_id, "professional")
    assert second.status_code == 409
    assert "upgrade" in second.json()["error"]["message"]
    # One Stripe customer however many checkouts.
    creates = [r for r in stand_in.requests if r.method == "POST" and r.path == "/v1/customers"]
    assert len(creates) == 1 and creates[0].idempotency_key


def test_without_stripe_key_checkout_names_the_missing_setting(api_client, admin_headers):
    customer_id = new_customer()
    response = checkout(api_client, admin_headers, customer_id, "starter")
    assert response.status_code == 503
    assert "STRIPE_SECRET_KEY" in response.json()["error"]["message"]
    # Everything else still works.
    assert api_client.get(f"/api/customers/{customer_id}", headers=admin_headers).status_code == 200


def test_stripe_rate_limiting_is_a_503_with_retry_after(stand_in, api_client, admin_headers):
    customer_id = new_customer()
    stand_in.fail_next_requests(5, status=429)
    response = checkout(api_client, admin_headers, customer_id, "starter")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0


def test_upgrade_by_customer_id_checks_out_or_changes_the_plan(stand_in, api_client, admin_headers):
    customer_id = new_customer()
    url = f"/api/subscriptions/{customer_id}/upgrade"
    first = api_client.post(url, json={"plan": "starter"}, headers=admin_headers)
    assert first.status_code == 200, first.text
    assert first.json()["sessionId"].startswith("cs_")
    handle_inline(stand_in.complete_checkout(first.json()["sessionId"]))
    # The same call for a paying customer changes the live subscription instead.
    second = api_client.post(url, json={"plan": "professional"}, headers=admin_headers)
    assert second.status_code == 200, second.text
    assert second.json()["plan"] == "professional" and second.json()["previousPlan"] == "starter"


def test_portal_link_for_a_stripe_customer_and_409_before_one_exists(
    stand_in, api_client, admin_headers
):
    customer_id = new_customer()
    body = {"customerId": customer_id, "returnUrl": "https://app.zemfyre.com/billing"}
    early = api_client.post("/api/subscriptions/portal", json=body, headers=admin_headers)
    assert early.status_code == 409 and early.json()["error"]["field"] == "customerId"
    checkout(api_client, admin_headers, customer_id, "starter")
    response = api_client.post("/api/subscriptions/portal", json=body, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["url"].startswith("https://billing.stripe.com/p/session/")
    portal = next(r for r in stand_in.requests if r.path == "/v1/billing_portal/sessions")
    assert portal.params["return_url"] == body["returnUrl"]
    # Our configuration, never the account's default (which lets customers switch plans).
    shown = stand_in.client().v1.billing_portal.configurations.retrieve(
        portal.params["configuration"]
    )
    assert not shown.is_default and shown.features.subscription_update.enabled is False
    assert shown.features.subscription_cancel.mode == "at_period_end"
    assert shown.features.payment_method_update.enabled and shown.features.invoice_history.enabled
    bad = api_client.post(
        "/api/subscriptions/portal",
        json={"customerId": customer_id, "returnUrl": "javascript:alert(1)"},
        headers=admin_headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "returnUrl"


def test_billing_conflicts_are_visible_in_the_api_and_metrics(stand_in, api_client, admin_headers):
    from core.settings import get_settings

    customer_id = new_customer()
    first = checkout(api_client, admin_headers, customer_id, "starter")
    handle_inline(stand_in.complete_checkout(first.json()["sessionId"]))
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    mark = len(stand_in.events)
    second = stand_in.create_subscription_directly(
        str(stripe_customer), get_settings().stripe_price_starter, {"customerId": customer_id}
    )
    handle_inline(stand_in.events[mark:])
    listed = api_client.get(
        f"/api/subscriptions/issues?customerId={customer_id}", headers=admin_headers
    )
    assert listed.status_code == 200, listed.text
    assert [(i["kind"], i["stripeObjectId"]) for i in listed.json()["issues"]] == [
        ("conflict", second["id"])
    ]
    metrics = api_client.get("/metrics", headers=admin_headers).text
    assert 'billing_issues_open{kind="conflict"} 1.0' in metrics
