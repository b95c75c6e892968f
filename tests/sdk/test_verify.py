"""Offline verification of real licenses: RS256 only, the issuer, PEM or JWKS, the claims."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from zemfyre_license import (
    UNLIMITED,
    InvalidLicenseError,
    JwksKeys,
    LicenseClient,
    PemKey,
    UnknownKeyError,
    verify_token,
)

from tests.sdk.conftest import Service


def _segments(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def _foreign_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_real_license_verifies_with_the_pem_and_says_what_the_plan_allows(
    service: Service, public_key_file: Path
) -> None:
    customer_id, token = service.create_customer()
    license = verify_token(token, PemKey.from_file(public_key_file))

    assert license.customer_id == customer_id
    assert (license.plan, license.status, license.is_trial) == ("trial", "trialing", True)
    assert license.trial_expires_at is not None and license.expires_at > license.issued_at
    assert license.max_devices == 5
    assert license.allows_devices(5) and not license.allows_devices(6)
    assert license.has_feature("canExportData") and license.has_feature("has_api_access")
    assert not license.has_feature("hasAdvancedAlerts")
    assert license.limit("data_retention_days") == 14
    verdict = LicenseClient(token, public_key=public_key_file).verdict()
    assert verdict.allowed and not verdict.in_grace, verdict.reason


def test_unlimited_is_the_service_s_2147483647_and_allows_any_count(
    service: Service, public_key_file: Path
) -> None:
    customer_id, _ = service.create_customer()
    token = service.change_plan(customer_id, "enterprise")["license"]
    license = verify_token(token, PemKey.from_file(public_key_file))

    assert license.features["maxDevices"] == UNLIMITED and license.unlimited_devices
    assert license.allows_devices(10**9)
    assert license.limit("maxUsers") is None  # unlimited
    assert license.has_feature("hasCustomBranding")


def test_forgeries_are_refused(service: Service, public_key_file: Path) -> None:
    _, token = service.create_customer()
    keys = PemKey.from_file(public_key_file)
    header, claims = _segments(token)
    foreign = _foreign_key()
    pem = public_key_file.read_bytes()
    forgeries = {
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]}),
        "RS512": jwt.encode(claims, foreign, algorithm="RS512", headers={"kid": header["kid"]}),
        "foreign key, real kid": jwt.encode(
            claims, foreign, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "no kid": jwt.encode(claims, foreign, algorithm="RS256"),
        "tampered payload": token.split(".")[0]
        + "."
        + base64.urlsafe_b64encode(json.dumps({**claims, "plan": "enterprise"}).encode())
        .rstrip(b"=")
        .decode()
        + "."
        + token.split(".")[2],
    }
    for name, forged in forgeries.items():
        with pytest.raises(InvalidLicenseError):
            verify_token(forged, keys)
            pytest.fail(f"{name} was accepted")
    # HS256 "signed" with the public key PEM: PyJWT refuses to even produce it, and the header
    # check refuses it before any key is involved.
    hs256 = _hs256_with(pem, claims, header["kid"])
    with pytest.raises(InvalidLicenseError, match="only RS256"):
        verify_token(hs256, keys)


def _hs256_with(secret: bytes, claims: dict, kid: str) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def test_the_issuer_is_checked_and_configurable(service: Service, public_key_file: Path) -> None:
    _, token = service.create_customer()
    keys = PemKey.from_file(public_key_file)
    assert verify_token(token, keys, issuer="zemfyre-billing").customer_id
    with pytest.raises(InvalidLicenseError, match="not issued by 'someone-else'"):
        verify_token(token, keys, issuer="someone-else")


def test_jwks_from_a_shipped_file_needs_no_network(service: Service, tmp_path: Path) -> None:
    _, token = service.create_customer()
    shipped = tmp_path / "jwks.json"
    shipped.write_text(json.dumps(service.jwks()))
    keys = JwksKeys(file=shipped, url="http://127.0.0.1:9/unreachable")
    assert verify_token(token, keys).kid in keys.key_set()
    assert keys.fetches == 0


def test_an_unknown_kid_refetches_the_jwks_once_then_refuses(
    service: Service, tmp_path: Path
) -> None:
    _, token = service.create_customer()
    header, claims = _segments(token)
    forged = jwt.encode(claims, _foreign_key(), algorithm="RS256", headers={"kid": "not-ours"})
    requests: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: requests.append(str(r.url))]}) as http:
        keys = JwksKeys(
            url=service.url + "/.well-known/jwks.json", cache_file=tmp_path / "c.json", http=http
        )
        assert verify_token(token, keys).kid == header["kid"]  # first use fetches the set
        assert len(requests) == 1
        for _ in range(3):
            with pytest.raises(UnknownKeyError, match="unknown key"):
                verify_token(forged, keys)
        # One refetch for the unknown kid, none for the repeats.
        assert len(requests) == 2
    cached = json.loads((tmp_path / "c.json").read_text())["keys"]
    assert header["kid"] in {key["kid"] for key in cached}


def test_a_small_or_non_rsa_key_is_not_trusted(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="1024-bit"):
        PemKey.from_pem(pem)


def test_a_damaged_jwks_cache_is_refetched_not_fatal(service: Service, tmp_path: Path) -> None:
    _, token = service.create_customer()
    cache = tmp_path / "jwks.json"
    cache.write_text('{"keys": [')  # a crash mid-write by some other tool
    keys = JwksKeys(url=service.url + "/.well-known/jwks.json", cache_file=cache)
    assert verify_token(token, keys).customer_id
    assert keys.fetches == 1 and json.loads(cache.read_text())["keys"]
