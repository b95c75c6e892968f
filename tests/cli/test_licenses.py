"""`billing license show|revoke|reinstate|verify`."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
from typer.testing import CliRunner

from cli.main import app
from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.keys import jwks, load_signing_key
from core.licensing.service import current_license
from core.settings import get_settings

runner = CliRunner()


def _customer() -> tuple[str, str]:
    with session_scope() as session:
        customer = create_customer(session, email="lcli@acme.example", company_name="L Inc")
        row = current_license(session, customer.customer_id)
        assert row is not None
        return customer.customer_id, row.token


def _public_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "public-key.pem"
    path.write_text(load_signing_key(get_settings()).public_pem)
    return path


def test_show_prints_the_current_license() -> None:
    customer_id, token = _customer()
    result = runner.invoke(app, ["license", "show", customer_id])
    assert result.exit_code == 0, result.output
    assert token in result.output.splitlines()
    assert "TRIAL" in result.output


def test_verify_offline_with_the_public_key_or_jwks(tmp_path: Path) -> None:
    _, token = _customer()
    result = runner.invoke(
        app, ["license", "verify", token, "--public-key", str(_public_key_file(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    assert "License is valid" in result.output
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(get_settings())))
    result = runner.invoke(app, ["license", "verify", token, "--public-key", str(jwks_file)])
    assert result.exit_code == 0, result.output
    # Read from stdin, the license never appears in the process list.
    result = runner.invoke(
        app, ["license", "verify", "--public-key", str(jwks_file)], input=token + "\n"
    )
    assert result.exit_code == 0 and "License is valid" in result.output, result.output


def test_verify_rejects_tampered_tokens_and_wrong_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _, token = _customer()
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["features"]["maxDevices"] = 999
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    forged = f"{header}.{forged_payload}.{signature}"
    key_file = str(_public_key_file(tmp_path))
    result = runner.invoke(app, ["license", "verify", forged, "--public-key", key_file])
    assert result.exit_code == 1
    assert "NOT valid" in result.output and "signature" in result.output

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other_file = tmp_path / "other.pem"
    other_file.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = runner.invoke(app, ["license", "verify", token, "--public-key", str(other_file)])
    assert result.exit_code == 1 and "NOT valid" in result.output

    missing = runner.invoke(app, ["license", "verify", token, "--public-key", "/nonexistent"])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_revoke_then_verify_then_reinstate(celery_worker, tmp_path: Path) -> None:
    customer_id, token = _customer()
    revoked = runner.invoke(app, ["license", "revoke", customer_id, "--reason", "unpaid"])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.output and "unpaid" in revoked.output
    with session_scope() as session:
        notice = current_license(session, customer_id)
        assert notice is not None
    key_file = str(_public_key_file(tmp_path))
    result = runner.invoke(app, ["license", "verify", notice.token, "--public-key", key_file])
    assert result.exit_code == 1  # it says revoked and has already expired

    reinstated = runner.invoke(app, ["license", "reinstate", customer_id])
    assert reinstated.exit_code == 0, reinstated.output
    new_token = next(
        line.split("=", 1)[1]
        for line in reinstated.output.splitlines()
        if line.startswith("LICENSE_JWT=")
    )
    assert new_token != token
    result = runner.invoke(app, ["license", "verify", new_token, "--public-key", key_file])
    assert result.exit_code == 0, result.output


def test_unknown_customer() -> None:
    result = runner.invoke(app, ["license", "show", "cust_missing"])
    assert result.exit_code == 1 and "no customer" in result.output


def _redis_values(prefix: str) -> list[bytes]:
    """Every value under this run's key prefix: results, queues, whatever the broker kept."""
    import redis

    from tests.conftest import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    values: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key)
        if kind == b"string":
            values.append(client.get(key) or b"")
        elif kind == b"list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            values.extend(client.hgetall(key).values())
        elif kind in (b"set", b"zset"):
            values.extend(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key))
    return values


def test_no_license_jwt_reaches_the_broker_or_the_result_store(celery_worker) -> None:
    from sqlalchemy import select

    from models import License
    from tasks.licenses import reissue_license, renew_licenses

    added = runner.invoke(app, ["customer", "add", "--email", "secret@acme.example"])
    assert added.exit_code == 0, added.output
    lines = added.output.splitlines()
    customer_id = next(line.split("=", 1)[1] for line in lines if line.startswith("CUSTOMER_ID="))
    assert runner.invoke(app, ["license", "revoke", customer_id]).exit_code == 0
    assert runner.invoke(app, ["license", "reinstate", customer_id]).exit_code == 0
    # The tasks that do sign licenses answer with the jti only.
    reissued = reissue_license.delay(customer_id, "test").get(timeout=60)
    assert set(reissued) == {"customerId", "reissued", "jti"}
    renew_licenses.delay().get(timeout=60)

    with session_scope() as session:
        tokens = list(session.scalars(select(License.token)))
    assert len(tokens) == 3  # created, says revoked, reinstated
    stored = b"\n".join(_redis_values(get_settings().celery_key_prefix or ""))
    for token in tokens:
        # The signature alone is enough to recognise a token, however it was serialised.
        assert token.rsplit(".", 1)[1].encode() not in stored
