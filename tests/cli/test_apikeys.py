"""`billing apikey create|list|revoke` against the real database."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app
from core.api_keys import hash_key
from tests.conftest import pg_scalar

runner = CliRunner()


def test_create_prints_the_key_once_and_stores_only_its_hash(api_client) -> None:
    result = runner.invoke(app, ["apikey", "create", "--name", "ops-team"])
    assert result.exit_code == 0, result.output
    key = next(line for line in result.output.splitlines() if line.startswith("zbk_"))
    assert pg_scalar(f"SELECT count(*) FROM api_keys WHERE key_hash = '{hash_key(key)}'") == 1
    assert pg_scalar(f"SELECT count(*) FROM api_keys WHERE key_hash = '{key}'") == 0
    headers = {"Authorization": f"Bearer {key}"}
    assert api_client.get("/api/customers", headers=headers).status_code == 200

    listing = runner.invoke(app, ["apikey", "list"])
    assert "ops-team" in listing.output
    assert key not in listing.output

    key_id = pg_scalar("SELECT id FROM api_keys WHERE name = 'ops-team'")
    revoked = runner.invoke(app, ["apikey", "revoke", str(key_id)])
    assert revoked.exit_code == 0
    assert api_client.get("/api/customers", headers=headers).status_code == 401


def test_revoking_an_unknown_key_fails_clearly() -> None:
    result = runner.invoke(app, ["apikey", "revoke", "999"])
    assert result.exit_code == 1
    assert "no API key with id 999" in result.output
