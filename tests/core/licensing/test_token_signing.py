"""Signing a license (sign_license, issue_license): RS256 with the key's kid, verifiable with the
public PEM or the JWKS alone."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from core.licensing.keys import SigningKey, jwks
from core.licensing.tokens import (
    build_claims,
    content_fingerprint,
    issue_license,
    sign_license,
    verify_license,
)
from core.settings import Settings
from tests.core.licensing.conftest import ISSUER, live_token, make_content


def test_license_verifies_with_nothing_but_the_public_pem(key: SigningKey) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    claims = build_claims(
        make_content(),
        issued_at=now,
        expires_at=now + timedelta(days=30),
        jti="jti-42",
        issuer=ISSUER,
    )
    token = sign_license(claims, key)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    decoded = jwt.decode(token, key.public_pem, algorithms=["RS256"])
    assert decoded == claims
    # Also a plain RSA check with cryptography, independent of PyJWT.
    signing_input, _, signature = token.rpartition(".")
    public_key = serialization.load_pem_public_key(key.public_pem.encode())
    public_key.verify(  # type: ignore[union-attr]
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        signing_input.encode(),
        padding.PKCS1v15(),  # type: ignore[call-arg]
        hashes.SHA256(),  # type: ignore[call-arg]
    )


def test_license_verifies_via_the_jwks(key_settings: Settings, key: SigningKey) -> None:
    token = live_token(key)
    document = json.loads(json.dumps(jwks(key_settings)))  # as an instance would receive it
    kid = jwt.get_unverified_header(token)["kid"]
    (entry,) = [k for k in document["keys"] if k["kid"] == kid]
    claims = jwt.decode(token, jwt.PyJWK(entry).key, algorithms=["RS256"], issuer=ISSUER)
    assert claims["customerId"] == "cust_abc123"
    assert jwt.PyJWKSet.from_dict(document)[kid].key_id == kid


def test_signing_needs_an_expiry(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="exp"):
        sign_license({"sub": "cust_abc123"}, key)


def test_unicode_names_survive(key: SigningKey, public_keys: dict) -> None:
    token = live_token(key, customer_name="Zürich Ølværk 株式会社")
    claims = verify_license(token, public_keys, issuer=ISSUER)
    assert claims["customerName"] == "Zürich Ølværk 株式会社"


def test_issue_license_puts_it_together(key: SigningKey, public_keys: dict) -> None:
    now = datetime.now(UTC)
    issued = issue_license(
        make_content(current_period_ends_at=now + timedelta(days=30)),
        key,
        now=now,
        issuer=ISSUER,
        grace_days=7,
        max_days=365,
    )
    claims = verify_license(issued.token, public_keys, issuer=ISSUER)
    assert claims == issued.claims
    assert claims["jti"] == issued.jti and len(issued.jti) == 32
    assert issued.kid == key.kid
    assert issued.issued_at == now.replace(microsecond=0)
    assert int(issued.issued_at.timestamp()) == claims["iat"]
    assert int(issued.expires_at.timestamp()) == claims["exp"]
    assert issued.expires_at == (now + timedelta(days=37)).replace(microsecond=0)
    assert issued.fingerprint == content_fingerprint(
        make_content(current_period_ends_at=now + timedelta(days=30))
    )
    other = issue_license(make_content(), key, now=now, issuer=ISSUER, grace_days=7, max_days=365)
    assert other.jti != issued.jti
