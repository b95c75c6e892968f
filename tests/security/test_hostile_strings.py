"""Inputs that once reached PostgreSQL and came back as 500s: each is now a 422 naming its field.

PostgreSQL refuses a NUL byte in text outright and a number past bigint, so these must be stopped
at the door. Found by fuzzing and probing (tests/security/test_schemathesis.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import pg_scalar
from tests.security.conftest import Callers

NUL_IN_PATH = "cust_ab%00cd"


def _admin(callers: Callers) -> dict[str, str]:
    return {"Authorization": f"Bearer {callers.admin_key}"}


def _assert_422(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/customers/{NUL_IN_PATH}"),
        ("GET", f"/api/licenses/{NUL_IN_PATH}"),
        ("POST", f"/api/licenses/{NUL_IN_PATH}/revoke"),
        ("POST", f"/api/licenses/{NUL_IN_PATH}/reinstate"),
        ("GET", f"/api/usage/{NUL_IN_PATH}"),
    ],
)
def test_nul_in_a_customer_id_path_is_422(api_client, callers: Callers, method, path) -> None:
    _assert_422(api_client.request(method, path, headers=_admin(callers)), "customerId")


@pytest.mark.parametrize("action", ["upgrade", "cancel"])
def test_nul_in_a_subscription_id_path_is_422(api_client, callers: Callers, action) -> None:
    response = api_client.post(
        f"/api/subscriptions/sub_%00/{action}", json={"plan": "starter"}, headers=_admin(callers)
    )
    _assert_422(response, "subscriptionId")


def test_an_oversized_id_in_the_path_is_422(api_client, callers: Callers) -> None:
    response = api_client.get("/api/customers/cust_" + "x" * 5000, headers=_admin(callers))
    _assert_422(response, "customerId")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nul@example.com", "name": "Ann\x00"}, "name"),
        ({"email": "nul@example.com", "companyName": "Acme\x00"}, "companyName"),
        ({"email": "nul@example.com", "company": "Acme\x07"}, "companyName"),
    ],
)
def test_control_characters_in_customer_text_are_422(api_client, callers, body, field) -> None:
    _assert_422(api_client.post("/api/customers", json=body, headers=_admin(callers)), field)
    assert pg_scalar("SELECT count(*) FROM customers WHERE email = 'nul@example.com'") == 0


def test_unicode_names_are_still_welcome(api_client, callers: Callers) -> None:
    body = {"email": "uni@example.com", "name": "Zoë\u00a0Ångström", "companyName": "Café ✓"}
    response = api_client.post("/api/customers", json=body, headers=_admin(callers))
    assert response.status_code == 201, response.text
    assert response.json()["customer"]["companyName"] == "Café ✓"


@pytest.mark.parametrize("path", ["/api/subscriptions/create-trial"])
def test_nul_in_a_body_customer_id_is_422(api_client, callers: Callers, path) -> None:
    body = {"customerId": "cust_\x00", "plan": "starter"}
    _assert_422(api_client.post(path, json=body, headers=_admin(callers)), "customerId")


def test_revocation_reason_is_checked_before_anything_is_revoked(api_client, callers) -> None:
    path = f"/api/licenses/{callers.customer_a}/revoke"
    _assert_422(api_client.post(path, json={"reason": "x\x00"}, headers=_admin(callers)), "reason")
    revoked = pg_scalar(
        f"SELECT license_revoked_at FROM customers WHERE customer_id = '{callers.customer_a}'"
    )
    assert revoked is None
    # Line breaks are a normal part of a reason.
    ok = api_client.post(path, json={"reason": "fraud\nsee ticket 7"}, headers=_admin(callers))
    assert ok.status_code == 200
    assert ok.json()["reason"] == "fraud\nsee ticket 7"


def test_core_refuses_an_overlong_reason_the_api_model_never_sees() -> None:
    """The CLI calls core directly: the column's 500 characters are enforced there too."""
    from core.db import session_scope
    from core.errors import InvalidInputError
    from core.licensing.revocation import revoke_license

    with pytest.raises(InvalidInputError) as error, session_scope() as session:
        revoke_license(session, "cust_whoever", reason="x" * 501)
    assert error.value.field == "reason"


def test_a_huge_offset_is_422_not_a_database_overflow(api_client, callers: Callers) -> None:
    response = api_client.get(f"/api/customers?offset={10**30}", headers=_admin(callers))
    _assert_422(response, "offset")


def test_a_body_that_is_not_utf8_is_422_naming_the_body(api_client, callers: Callers) -> None:
    headers = {**_admin(callers), "Content-Type": "application/json"}
    # Not UTF-8 at all: FastAPI answered a bare 400 here, and 422 for merely invalid JSON.
    response = api_client.post("/api/customers", content=b'{"email": "\xff"}', headers=headers)
    _assert_422(response, "body")
    invalid_json = api_client.post("/api/customers", content=b'{"email": ', headers=headers)
    _assert_422(invalid_json, "body")


def test_a_bad_path_parameter_is_named_as_the_api_spells_it(api_client, admin_headers) -> None:
    response = api_client.get("/api/customers/not!an*id", headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "customerId"


NESTED = b"[" * 3000 + b"]" * 3000


@pytest.mark.parametrize(
    "body",
    [
        NESTED,
        b'{"customerId": ' + b"[" * 100_000,
        b'{"customerId": "cust", "instanceId": "i", "metrics": ' + b"{" * 5000,
        b"\xff\xfe not json",
        b'{"customerId": 1e999999, "instanceId": "\\ud800"}',
        b"",
    ],
    ids=["3000-nested-arrays", "100k-open-arrays", "nested-objects", "not-utf8", "odd", "empty"],
)
def test_hostile_json_on_the_usage_report_is_a_json_4xx(
    api_client, callers: Callers, body: bytes
) -> None:
    response = api_client.post(
        "/api/usage/report",
        content=body,
        headers={
            "Authorization": f"Bearer {callers.license_a}",
            "Content-Type": "application/json",
        },
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]


@pytest.mark.parametrize("path", ["/api/customers", "/api/subscriptions/create-trial"])
def test_hostile_json_on_admin_routes_is_a_json_4xx(api_client, callers: Callers, path) -> None:
    for body in (NESTED, b'{"email": ' + b"[" * 100_000, b"{" * 3000):
        response = api_client.post(
            path, content=body, headers={**_admin(callers), "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["code"]


def test_a_huge_body_is_413_before_it_is_parsed(api_client, callers: Callers) -> None:
    body = b"[" * (2 * 1024 * 1024)
    response = api_client.post(
        "/api/usage/report",
        content=body,
        headers={"Authorization": f"Bearer {callers.license_a}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
