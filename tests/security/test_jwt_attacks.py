"""Forged and doctored licenses, presented where instances authenticate.

Each token below is built from customer A's genuine license (its recorded jti and claims), so
the only thing wrong with it is the attack itself; each must be refused with 401 at check-in,
at usage report (storing nothing) and at the usage read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.licensing.keys import load_signing_key
from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.security.conftest import Callers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _real_kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _sign_with_real_key(claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    key = load_signing_key(get_settings())
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def _foreign_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def alg_none(token: str) -> str:
    header = {"alg": "none", "kid": _real_kid(token), "typ": "JWT"}
    return f"{_segment(header)}.{_segment(_claims(token))}."


def hs256_with_public_key(token: str) -> str:
    """The classic key-confusion forgery: HMAC keyed with the server's public key PEM.

    Built by hand because PyJWT refuses a PEM as an HMAC secret.
    """
    public_pem = load_signing_key(get_settings()).public_pem.encode()
    header = {"alg": "HS256", "kid": _real_kid(token), "typ": "JWT"}
    signing_input = f"{_segment(header)}.{_segment(_claims(token))}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def foreign_key_real_kid(token: str) -> str:
    return jwt.encode(
        _claims(token), _foreign_key(), algorithm="RS256", headers={"kid": _real_kid(token)}
    )


def foreign_key_unknown_kid(token: str) -> str:
    return jwt.encode(_claims(token), _foreign_key(), algorithm="RS256", headers={"kid": "evil"})


def foreign_key_embedded_jwk(token: str) -> str:
    """A header that carries its own public key: it must never be used to verify."""
    foreign = _foreign_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(foreign.public_key()))
    return jwt.encode(_claims(token), foreign, algorithm="RS256", headers={"jwk": jwk})


def missing_kid(token: str) -> str:
    # The real private key: only the absent kid is wrong.
    key = load_signing_key(get_settings())
    return jwt.encode(_claims(token), key.private_key, algorithm="RS256")


def path_traversal_kid(token: str) -> str:
    return _sign_with_real_key(_claims(token), {"kid": "../../../../dev/null"})


def expired(token: str) -> str:
    claims = _claims(token)
    claims["exp"] = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    claims["iat"] = claims["exp"] - 3600
    return _sign_with_real_key(claims, {"kid": _real_kid(token)})


def wrong_issuer(token: str) -> str:
    claims = {**_claims(token), "iss": "someone-else"}
    return _sign_with_real_key(claims, {"kid": _real_kid(token)})


def tampered_payload(token: str) -> str:
    """Upgrade yourself to unlimited enterprise, keeping the genuine signature."""
    header, _, signature = token.split(".")
    claims = _claims(token)
    claims["plan"] = "enterprise"
    claims["limits"] = {**claims.get("limits", {}), "maxDevices": None}
    return f"{header}.{_segment(claims)}.{signature}"


def other_algorithm_same_key(token: str) -> str:
    """RS512 with the real key: only RS256 is accepted, whatever key signed it."""
    key = load_signing_key(get_settings())
    return jwt.encode(
        _claims(token), key.private_key, algorithm="RS512", headers={"kid": _real_kid(token)}
    )


def unrecorded_jti(token: str) -> str:
    """Signed with the real key but never issued (as with a leaked key): not in `licenses`."""
    claims = {**_claims(token), "jti": "f" * 32}
    return _sign_with_real_key(claims, {"kid": _real_kid(token)})


ATTACKS: dict[str, Callable[[str], str]] = {
    "alg_none": alg_none,
    "hs256_signed_with_public_key": hs256_with_public_key,
    "foreign_key_with_real_kid": foreign_key_real_kid,
    "foreign_key_with_unknown_kid": foreign_key_unknown_kid,
    "foreign_key_in_jwk_header": foreign_key_embedded_jwk,
    "missing_kid": missing_kid,
    "path_traversal_kid": path_traversal_kid,
    "expired": expired,
    "wrong_issuer": wrong_issuer,
    "tampered_payload": tampered_payload,
    "rs512_with_real_key": other_algorithm_same_key,
    "genuine_signature_unrecorded_jti": unrecorded_jti,
}
# An expired license is refused everywhere but check-in, which lets an instance whose trial
# lapsed fetch its new license (docs/licensing.md, core/licensing/instance_auth.py); that case
# has its own test.
CHECK_IN_ACCEPTS = {"expired"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_genuine_license_is_accepted(api_client, callers: Callers) -> None:
    """The control: the same calls with the untouched license succeed."""
    assert api_client.get("/api/licenses/current", headers=_bearer(callers.license_a)).is_success
    report = _report(callers)
    response = api_client.post("/api/usage/report", json=report, headers=_bearer(callers.license_a))
    assert response.status_code == 202


def _report(callers: Callers) -> dict[str, Any]:
    return {
        "customerId": callers.customer_a,
        "instanceId": "attacker",
        "metrics": {"activeDevices": 1, "totalDevices": 1},
    }


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_license_is_refused(api_client, callers: Callers, attack: str) -> None:
    forged = ATTACKS[attack](callers.license_a)
    assert forged != callers.license_a

    check_in = api_client.get("/api/licenses/current", headers=_bearer(forged))
    if attack in CHECK_IN_ACCEPTS:
        assert check_in.status_code == 200
    else:
        _assert_refused(check_in)

    report = api_client.post("/api/usage/report", json=_report(callers), headers=_bearer(forged))
    _assert_refused(report)
    assert pg_scalar("SELECT count(*) FROM usage_reports") == 0

    _assert_refused(api_client.get(f"/api/usage/{callers.customer_a}", headers=_bearer(forged)))


def test_an_expired_license_checks_in_for_the_current_one(api_client, callers: Callers) -> None:
    """The one door an expired license opens: fetching the current license, nothing else."""
    response = api_client.get("/api/licenses/current", headers=_bearer(expired(callers.license_a)))
    assert response.status_code == 200
    body = response.json()
    assert body["customerId"] == callers.customer_a
    assert body["license"] == callers.license_a
    # The license handed back is genuine and unexpired.
    claims = jwt.decode(
        body["license"],
        body["publicKey"],
        algorithms=["RS256"],
        issuer=get_settings().license_issuer,
    )
    assert claims["sub"] == callers.customer_a


def test_forged_licenses_never_reach_admin_routes(api_client, callers: Callers) -> None:
    for attack in sorted(ATTACKS):
        forged = ATTACKS[attack](callers.license_a)
        _assert_refused(api_client.get("/api/customers", headers=_bearer(forged)))


def test_a_client_forging_licenses_at_check_in_is_stopped_by_the_failed_auth_limit() -> None:
    """Every refused check-in counts against the client's address; over the limit, its next
    requests are refused (429) before any signature is checked, its genuine license too."""
    import httpx

    from core.customers.service import create_customer
    from core.db import session_scope
    from core.licensing.service import current_license
    from tests.helpers.processes import api_server

    with session_scope() as session:
        customer_id = create_customer(session, email="flood@security.example").customer_id
        genuine = current_license(session, customer_id).token  # type: ignore[union-attr]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    env = {"LOG_LEVEL": "WARNING", "RATE_LIMIT_FAILED_AUTH_PER_CLIENT": "5"}
    with api_server(env) as url:

        def check_in(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(f"{url}/api/licenses/current", headers=headers, timeout=10).status_code

        statuses = [
            check_in(
                jwt.encode(
                    {**_claims(genuine), "jti": f"forged{number}"},
                    other,
                    algorithm="RS256",
                    headers={"kid": _real_kid(genuine)},
                )
            )
            for number in range(12)
        ]
        assert set(statuses) <= {401, 429} and statuses[-1] == 429, statuses
        assert statuses.count(401) <= 6  # the count is shared by every process of this run
        assert check_in(genuine) == 429
