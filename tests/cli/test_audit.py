"""Every door writes its audit entry: the API (the key's name, the request id), the CLI
(cli:<OS user>), and `billing audit` and GET /api/audit list them."""

from __future__ import annotations

import getpass

from typer.testing import CliRunner

from cli.main import app
from tests.conftest import pg_scalar

runner = CliRunner()


def _customer(api_client, admin_headers) -> str:  # type: ignore[no-untyped-def]
    created = api_client.post(
        "/api/customers", json={"email": "ops@acme.example"}, headers=admin_headers
    )
    return str(created.json()["customer"]["customerId"])


def test_an_api_revocation_is_audited_with_the_keys_name_and_request_id(
    api_client, admin_headers
) -> None:
    customer_id = _customer(api_client, admin_headers)
    answer = api_client.post(
        f"/api/licenses/{customer_id}/revoke",
        json={"reason": "chargeback"},
        headers={**admin_headers, "X-Request-ID": "req-revoke-1"},
    )
    assert answer.status_code == 200
    listed = api_client.get(
        "/api/audit", params={"customerId": customer_id}, headers=admin_headers
    ).json()
    revoke = listed["entries"][0]
    assert (revoke["actor"], revoke["action"], revoke["reason"]) == (
        "test-admin",
        "license.revoke",
        "chargeback",
    )
    assert revoke["requestId"] == "req-revoke-1"
    assert revoke["before"] == {"revoked_at": None}
    assert [entry["action"] for entry in listed["entries"]] == ["license.revoke", "customer.create"]


def test_cli_changes_are_audited_as_the_os_user_and_listed(api_client, admin_headers) -> None:
    customer_id = _customer(api_client, admin_headers)
    revoked = runner.invoke(app, ["license", "revoke", customer_id, "--reason", "fraud"])
    assert revoked.exit_code == 0, revoked.output
    reinstated = runner.invoke(
        app, ["license", "reinstate", customer_id, "--reason", "paid after all"]
    )
    assert reinstated.exit_code == 0, reinstated.output
    reissued = runner.invoke(app, ["license", "reissue", customer_id])
    assert reissued.exit_code == 0, reissued.output
    actor = f"cli:{getpass.getuser()}"
    assert (
        pg_scalar(
            f"SELECT count(*) FROM audit_log "
            f"WHERE actor = '{actor}' AND customer_id = '{customer_id}'"
        )
        == 3
    )

    listing = runner.invoke(app, ["audit", "--customer", customer_id])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    reissue_line = next(i for i, line in enumerate(lines) if "license.reissue" in line)
    revoke_line = next(i for i, line in enumerate(lines) if "license.revoke" in line)
    assert reissue_line < revoke_line  # newest first
    assert "paid after all" in listing.output and actor in listing.output
    later = runner.invoke(app, ["audit", "--since", "2999-01-01"])
    assert "0 entries" in later.output
    bad = runner.invoke(app, ["audit", "--since", "yesterday"])
    assert bad.exit_code == 1 and "--since" in bad.output


def test_api_key_creation_and_revocation_are_audited() -> None:
    created = runner.invoke(app, ["apikey", "create", "--name", "bob", "--role", "viewer"])
    assert created.exit_code == 0 and "(viewer)" in created.output
    key_id = pg_scalar("SELECT id FROM api_keys WHERE name = 'bob'")
    assert runner.invoke(app, ["apikey", "revoke", str(key_id)]).exit_code == 0
    actions = pg_scalar("SELECT string_agg(action, ',' ORDER BY id) FROM audit_log")
    assert actions == "apikey.create,apikey.revoke"
    wrong = runner.invoke(app, ["apikey", "create", "--name", "x", "--role", "admin"])
    assert wrong.exit_code == 1 and "role must be one of" in wrong.output


def test_api_reissue_and_reinstate_with_a_reason_are_audited(api_client, admin_headers) -> None:
    customer_id = _customer(api_client, admin_headers)
    before = pg_scalar(
        f"SELECT jti FROM licenses WHERE customer_id = '{customer_id}' AND superseded_at IS NULL"
    )
    reissued = api_client.post(
        f"/api/licenses/{customer_id}/reissue", json={"reason": "lost"}, headers=admin_headers
    )
    assert reissued.status_code == 200 and reissued.json()["jti"] != before
    api_client.post(f"/api/licenses/{customer_id}/revoke", json={}, headers=admin_headers)
    reinstated = api_client.post(
        f"/api/licenses/{customer_id}/reinstate", json={"reason": "paid"}, headers=admin_headers
    )
    assert reinstated.status_code == 200
    listed = api_client.get(
        "/api/audit", params={"customerId": customer_id, "limit": 2}, headers=admin_headers
    ).json()
    assert [(e["action"], e["reason"]) for e in listed["entries"]] == [
        ("license.reinstate", "paid"),
        ("license.revoke", None),
    ]
    assert listed["nextBeforeId"] is not None
    older = api_client.get(
        "/api/audit",
        params={"customerId": customer_id, "beforeId": listed["nextBeforeId"]},
        headers=admin_headers,
    ).json()
    assert [e["action"] for e in older["entries"]] == ["license.reissue", "customer.create"]


def test_a_nul_byte_in_any_query_parameter_is_a_422_naming_it(api_client, admin_headers) -> None:
    """PostgreSQL refuses text holding NUL: refused for every route before it reaches it."""
    for params, field in (
        ({"actor": "\x00"}, "actor"),
        ({"customerId": "cust_\x00a"}, "customerId"),
    ):
        answer = api_client.get("/api/audit", params=params, headers=admin_headers)
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == field
        assert "NUL" in answer.json()["error"]["message"]
    other = api_client.get("/api/customers", params={"q": "a\x00"}, headers=admin_headers)
    assert other.status_code == 422 and other.json()["error"]["field"] == "q"
