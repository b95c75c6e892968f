"""License endpoints: admin read, JWKS and public key, check-in, revocation, key rotation."""

from __future__ import annotations

import json

import jwt
import pytest

from core.licensing.keys import rotate_keys
from tests.conftest import pg_scalar


@pytest.fixture
def customer_id(api_client, admin_headers) -> str:
    response = api_client.post(
        "/api/customers",
        json={"email": "lic@acme.example", "companyName": "Acme"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["customer"]["customerId"]


def _license(api_client, admin_headers, customer_id: str) -> dict:
    response = api_client.get(f"/api/licenses/{customer_id}", headers=admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_license_verifies_with_only_the_public_key_it_comes_with(
    api_client, admin_headers, customer_id
) -> None:
    body = _license(api_client, admin_headers, customer_id)
    claims = jwt.decode(body["license"], body["publicKey"], algorithms=["RS256"])
    assert claims["sub"] == customer_id == claims["customerId"]
    assert claims["customerName"] == "Acme"
    for name in ("iss", "iat", "exp", "jti", "features", "limits", "trial", "subscription"):
        assert name in claims
    # Reads don't re-sign: the same stored token every time.
    assert _license(api_client, admin_headers, customer_id)["license"] == body["license"]
    assert pg_scalar("SELECT count(*) FROM licenses") == 1


def test_license_verifies_with_the_published_jwks(api_client, admin_headers, customer_id) -> None:
    token = _license(api_client, admin_headers, customer_id)["license"]
    document = api_client.get("/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(key for key in document["keys"] if key["kid"] == kid)
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public_key, algorithms=["RS256"])
    assert claims["customerId"] == customer_id


def test_public_key_endpoint_returns_the_active_pem(api_client) -> None:
    body = api_client.get("/api/licenses/public-key").json()
    assert body["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert body["algorithm"] == "RS256"
    raw = api_client.get("/api/licenses/public-key?format=pem")
    assert raw.text == body["publicKey"]


def test_license_of_unknown_customer_is_404(api_client, admin_headers) -> None:
    response = api_client.get("/api/licenses/cust_missing", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "customerId"
    revoke = api_client.post("/api/licenses/cust_missing/revoke", headers=admin_headers)
    assert revoke.status_code == 404


def test_admin_license_endpoints_need_an_admin_key(api_client, customer_id) -> None:
    assert api_client.get(f"/api/licenses/{customer_id}").status_code == 401
    assert api_client.post(f"/api/licenses/{customer_id}/revoke").status_code == 401


def _check_in(api_client, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api_client.get("/api/licenses/current", headers=headers)


def test_check_in_returns_the_current_license(api_client, admin_headers, customer_id) -> None:
    first = _license(api_client, admin_headers, customer_id)["license"]
    response = _check_in(api_client, first)
    assert response.status_code == 200, response.text
    assert response.json()["license"] == first
    assert response.json()["changed"] is False

    # The customer changes plan: the instance picks the new license up with the old one.
    upgraded = api_client.post(
        "/api/subscriptions/create-trial",
        json={"customerId": customer_id, "plan": "professional"},
        headers=admin_headers,
    ).json()["license"]
    response = _check_in(api_client, first)
    assert response.status_code == 200
    assert response.json()["license"] == upgraded
    assert response.json()["changed"] is True


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing license"),
        ("not.a.jwt", "well-formed"),
        ("garbage", "well-formed"),
    ],
)
def test_check_in_refuses_missing_or_malformed(api_client, token, message) -> None:
    response = _check_in(api_client, token)
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]


def test_check_in_refuses_a_forged_license(api_client, admin_headers, customer_id) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    token = _license(api_client, admin_headers, customer_id)["license"]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["features"]["maxDevices"] = 10_000
    kid = jwt.get_unverified_header(token)["kid"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid})
    response = _check_in(api_client, forged)
    assert response.status_code == 401
    assert "signature" in response.json()["error"]["message"]


def test_revoked_license_is_refused_at_check_in(api_client, admin_headers, customer_id) -> None:
    token = _license(api_client, admin_headers, customer_id)["license"]
    response = api_client.post(
        f"/api/licenses/{customer_id}/revoke",
        json={"reason": "chargeback"},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reason"] == "chargeback" and body["revokedLicenses"] == 1
    refused = _check_in(api_client, token)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    # The 401 hands the revoked license to whoever presented a genuine token of the customer:
    # it says revoked, never the operator's note.
    handed = jwt.decode(refused.json()["license"], options={"verify_signature": False})
    assert handed["revocation"] == {"revoked": True, "reason": "revoked"}
    assert "chargeback" not in json.dumps(handed)

    # The customer's next license says it is revoked.
    current = _license(api_client, admin_headers, customer_id)
    claims = jwt.decode(
        current["license"],
        current["publicKey"],
        algorithms=["RS256"],
        options={"verify_exp": False},
    )
    assert claims["revocation"] == {"revoked": True, "reason": "revoked"}
    assert claims["subscription"]["status"] == "canceled"
    assert claims["exp"] <= claims["iat"]
    # The refusal carries that license: the instance stops on a signature, not on words.
    assert refused.json()["license"] == current["license"]

    # Revoking twice changes nothing.
    again = api_client.post(f"/api/licenses/{customer_id}/revoke", headers=admin_headers).json()
    assert again["revokedAt"] == body["revokedAt"] and again["license"] == body["license"]

    reinstated = api_client.post(f"/api/licenses/{customer_id}/reinstate", headers=admin_headers)
    assert reinstated.status_code == 200
    fresh = jwt.decode(
        reinstated.json()["license"], reinstated.json()["publicKey"], algorithms=["RS256"]
    )
    assert "revocation" not in fresh and fresh["subscription"]["status"] == "trialing"
    assert _check_in(api_client, reinstated.json()["license"]).status_code == 200
    # The revoked license stays refused after the reinstatement, and no longer carries the
    # customer's license: the normal one goes only to whom the operator hands it.
    after = _check_in(api_client, token)
    assert after.status_code == 401 and "license" not in after.json()


def test_rotated_key_signs_new_licenses_and_old_ones_still_verify(
    api_client, admin_headers, customer_id, isolated_keys
) -> None:
    old = _license(api_client, admin_headers, customer_id)
    old_kid = jwt.get_unverified_header(old["license"])["kid"]
    new_kid = rotate_keys(isolated_keys)
    assert new_kid != old_kid

    # The old license still checks in and verifies against the JWKS, which lists both keys.
    document = api_client.get("/.well-known/jwks.json").json()
    assert {key["kid"] for key in document["keys"]} == {old_kid, new_kid}
    assert document["keys"][0]["kid"] == new_kid
    old_jwk = next(key for key in document["keys"] if key["kid"] == old_kid)
    jwt.decode(old["license"], jwt.PyJWK(old_jwk).key, algorithms=["RS256"])
    checked_in = _check_in(api_client, old["license"])
    assert checked_in.status_code == 200

    # The key changed, so the next license is signed with the new key.
    new = checked_in.json()
    assert new["changed"] is True and new["kid"] == new_kid
    assert jwt.get_unverified_header(new["license"])["kid"] == new_kid
    jwt.decode(new["license"], new["publicKey"], algorithms=["RS256"])
    public = api_client.get("/api/licenses/public-key").json()
    assert public["kid"] == new_kid
