"""Deployment the way the compose file and docs/operations.md describe it."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers.processes import api_server


def test_the_api_signs_licenses_with_a_key_given_only_as_base64_license_private_key(
    tmp_path: Path, admin_key: str
) -> None:
    """A container that cannot read the mounted key file (uid 10001 vs a 0600 host file) gets
    the key as LICENSE_PRIVATE_KEY instead; no key file exists at all here."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    env = {
        "LICENSE_PRIVATE_KEY": base64.b64encode(pem).decode(),
        "LICENSE_PRIVATE_KEY_PATH": str(tmp_path / "absent" / "private-key.pem"),
        "LICENSE_PUBLIC_KEY_PATH": str(tmp_path / "absent" / "public-key.pem"),
    }
    headers = {"Authorization": f"Bearer {admin_key}"}
    with api_server(env=env) as url:
        created = httpx.post(
            f"{url}/api/customers",
            json={"email": "env-key@example.com", "name": "Env Key"},
            headers=headers,
            timeout=20,
        )
        assert created.status_code == 201, created.text
        customer_id = created.json()["customer"]["customerId"]
        served = httpx.get(f"{url}/api/licenses/{customer_id}", headers=headers, timeout=20)
        jwks = httpx.get(f"{url}/.well-known/jwks.json", timeout=20)
    assert served.status_code == 200, served.text
    body = served.json()
    # Signed by exactly the key handed over in the environment.
    claims = jwt.decode(body["license"], private_key.public_key(), algorithms=["RS256"])
    assert claims["customerId"] == customer_id
    served_public = serialization.load_pem_public_key(body["publicKey"].encode())
    assert served_public.public_numbers() == private_key.public_key().public_numbers()
    assert jwks.status_code == 200
    assert len(jwks.json()["keys"]) == 1


ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_no_default_passwords_and_keeps_flower_on_localhost() -> None:
    import re

    import yaml

    text = (ROOT / "docker-compose.yml").read_text()
    # ${VAR:-default} would start a stack with a well-known password; ${VAR:?} refuses to.
    assert not re.search(r"\$\{[A-Z_]*PASSWORD[A-Z_]*:-", text)
    assert "${POSTGRES_PASSWORD:?" in text
    assert re.search(r"^POSTGRES_PASSWORD=", (ROOT / ".env.example").read_text(), re.MULTILINE)

    services = yaml.safe_load(text)["services"]
    assert all(port.startswith("127.0.0.1:") for port in services["flower"]["ports"])
    for name, service in services.items():
        command = " ".join(service.get("command", []))
        assert "basic-auth" not in command and "basic_auth" not in command, name
