"""POST/GET /api/customers: creation with a trial and a first license, lookups, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from core.licensing.keys import load_signing_key
from core.settings import get_settings
from tests.conftest import pg_scalar


def _create(api_client, admin_headers, **body: object):
    return api_client.post("/api/customers", json=body, headers=admin_headers)


def test_create_customer_starts_a_trial_with_a_license_that_verifies(
    api_client, admin_headers
) -> None:
    response = _create(
        api_client, admin_headers, email="Owner@Acme.example", name="Ann", companyName="Acme"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    customer = body["customer"]
    assert customer["customerId"].startswith("cust_") and len(customer["customerId"]) > 12
    assert customer["companyName"] == "Acme"
    assert body["subscription"]["plan"] == "trial"
    assert body["subscription"]["status"] == "trialing"
    trial_end = datetime.fromisoformat(body["subscription"]["trialEndsAt"])
    assert timedelta(days=13, hours=23) < trial_end - datetime.now(UTC) <= timedelta(days=14)

    public_pem = load_signing_key(get_settings()).public_pem
    claims = jwt.decode(body["license"], public_pem, algorithms=["RS256"])
    assert claims["customerId"] == customer["customerId"]
    assert claims["plan"] == "trial"
    assert claims["trial"]["isTrialMode"] is True
    assert claims["features"]["maxDevices"] == 5
    # A trial's license ends with the trial.
    assert abs(claims["exp"] - trial_end.timestamp()) < 2
    cid = customer["customerId"]
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{cid}'") == 1
    assert pg_scalar(f"SELECT status FROM subscriptions WHERE customer_id = '{cid}'") == "trialing"


def test_seed_style_company_field_and_plan_trial(api_client, admin_headers) -> None:
    response = _create(
        api_client, admin_headers, email="pro@x.example", company="Pro Inc", plan="Professional"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["customer"]["companyName"] == "Pro Inc"
    assert body["subscription"]["plan"] == "professional"
    claims = jwt.decode(body["license"], options={"verify_signature": False})
    assert claims["features"]["maxDevices"] == 50
    assert claims["features"]["hasAdvancedAlerts"] is True
    assert claims["trial"]["isTrialMode"] is True


@pytest.mark.parametrize("email", ["dup@acme.example", "DUP@ACME.EXAMPLE", "Dup@Acme.Example"])
def test_same_email_in_any_letter_case_is_a_409(api_client, admin_headers, email) -> None:
    assert _create(api_client, admin_headers, email="dup@acme.example").status_code == 201
    response = _create(api_client, admin_headers, email=email)
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "email"
    assert pg_scalar("SELECT count(*) FROM customers") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({}, "email"),
        ({"email": 42}, "email"),
        ({"email": "ok@acme.example", "plan": "platinum"}, "plan"),
        ({"email": "ok@acme.example", "name": "x" * 300}, "name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api_client, admin_headers, body, field) -> None:
    response = api_client.post("/api/customers", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert pg_scalar("SELECT count(*) FROM customers") == 0


def test_unknown_plan_message_lists_the_valid_plans(api_client, admin_headers) -> None:
    response = _create(api_client, admin_headers, email="p@acme.example", plan="gold")
    message = response.json()["error"]["message"]
    assert "gold" in message and "professional" in message


def test_get_customer_and_unknown_customer(api_client, admin_headers) -> None:
    created = _create(api_client, admin_headers, email="get@acme.example", name="G").json()
    cid = created["customer"]["customerId"]
    response = api_client.get(f"/api/customers/{cid}", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "get@acme.example"
    assert body["subscription"]["status"] == "trialing"
    assert body["license"]["expiresAt"]
    missing = api_client.get("/api/customers/cust_nope", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "customerId"


def test_list_paginates(api_client, admin_headers) -> None:
    for i in range(3):
        assert _create(api_client, admin_headers, email=f"l{i}@acme.example").status_code == 201
    page = api_client.get("/api/customers?limit=2&offset=1", headers=admin_headers).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
    assert [item["email"] for item in page["items"]] == ["l1@acme.example", "l2@acme.example"]


def test_customer_endpoints_need_an_admin_key(api_client) -> None:
    assert api_client.post("/api/customers", json={"email": "a@b.example"}).status_code == 401
    assert api_client.get("/api/customers/cust_x").status_code == 401


def test_create_trial_of_a_plan(api_client, admin_headers) -> None:
    created = _create(api_client, admin_headers, email="t@acme.example").json()
    cid = created["customer"]["customerId"]
    first = api_client.post(
        "/api/subscriptions/create-trial",
        json={"customerId": cid, "plan": "starter"},
        headers=admin_headers,
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["plan"] == "starter" and body["status"] == "trialing"
    # The trial end does not move: asking again never extends the free period.
    assert body["trialEndsAt"] == created["subscription"]["trialEndsAt"]
    claims = jwt.decode(body["license"], options={"verify_signature": False})
    assert claims["plan"] == "starter" and claims["features"]["maxDevices"] == 10
    again = api_client.post(
        "/api/subscriptions/create-trial",
        json={"customerId": cid, "plan": "starter"},
        headers=admin_headers,
    )
    assert again.json()["license"] == body["license"]
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{cid}'") == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"customerId": "cust_unknown", "plan": "starter"}, 404, "customerId"),
        ({"customerId": "CID", "plan": "diamond"}, 422, "plan"),
        ({"plan": "starter"}, 422, "customerId"),
    ],
)
def test_create_trial_bad_input(api_client, admin_headers, body, status, field) -> None:
    cid = _create(api_client, admin_headers, email="bad@acme.example").json()["customer"][
        "customerId"
    ]
    if body.get("customerId") == "CID":
        body = {**body, "customerId": cid}
    response = api_client.post("/api/subscriptions/create-trial", json=body, headers=admin_headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_create_trial_refused_after_the_trial_expired(api_client, admin_headers) -> None:
    cid = _create(api_client, admin_headers, email="exp@acme.example").json()["customer"][
        "customerId"
    ]
    from sqlalchemy import update

    from core.db import session_scope
    from models import Subscription

    with session_scope() as session:
        session.execute(
            update(Subscription).where(Subscription.customer_id == cid).values(status="expired")
        )
    response = api_client.post(
        "/api/subscriptions/create-trial",
        json={"customerId": cid, "plan": "professional"},
        headers=admin_headers,
    )
    assert response.status_code == 409


@pytest.mark.parametrize("field", ["name", "companyName"])
def test_a_lone_surrogate_in_a_name_is_a_422_naming_the_field(
    api_client, admin_headers, field
) -> None:
    # Valid JSON ("\ud800" escaped), but no UTF-8 text: it could never be stored.
    body = '{"email": "odd@x.example", "' + field + '": "a\\ud800b"}'
    response = api_client.post(
        "/api/customers",
        content=body,
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert pg_scalar("SELECT count(*) FROM customers") == 0
