"""API key roles: a viewer reads every admin GET route and changes nothing."""

from __future__ import annotations

from tests.conftest import pg_scalar
from tests.console.conftest import new_key


def test_a_viewer_reads_but_every_change_is_refused_with_403(api_client, admin_headers) -> None:
    created = api_client.post(
        "/api/customers", json={"email": "a@acme.example"}, headers=admin_headers
    )
    customer_id = created.json()["customer"]["customerId"]
    viewer = {"Authorization": f"Bearer {new_key('victor@support', 'viewer')}"}
    assert api_client.get("/api/customers", headers=viewer).status_code == 200
    assert api_client.get(f"/api/customers/{customer_id}", headers=viewer).status_code == 200
    refused = api_client.post(
        f"/api/licenses/{customer_id}/revoke", json={"reason": "x"}, headers=viewer
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "viewer" in refused.json()["error"]["message"]
    assert (
        api_client.post(
            "/api/customers", json={"email": "b@acme.example"}, headers=viewer
        ).status_code
        == 403
    )
    assert pg_scalar("SELECT count(*) FROM customers") == 1
    assert pg_scalar("SELECT license_revoked_at FROM customers") is None


def test_keys_made_before_roles_are_operators(api_client) -> None:
    key = new_key("old-key")
    assert pg_scalar("SELECT role FROM api_keys") == "operator"
    created = api_client.post(
        "/api/customers",
        json={"email": "a@acme.example"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert created.status_code == 201
