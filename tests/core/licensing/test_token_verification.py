"""Verifying a license (verify_license): the claims of a good token; every forged, tampered,
expired, misissued or malformed one refused with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.licensing.keys import SigningKey
from core.licensing.tokens import InvalidLicenseError, issue_license, sign_license, verify_license
from tests.core.licensing.conftest import (
    ISSUER,
    b64url,
    live_token,
    make_content,
    segment,
    signed_token,
)


def test_verify_returns_the_claims(key: SigningKey, public_keys: dict) -> None:
    claims = verify_license(live_token(key), public_keys, issuer=ISSUER)
    assert claims["sub"] == claims["customerId"] == "cust_abc123"
    assert claims["plan"] == "professional"


def refused(token: str, public_keys: dict, **kwargs: object) -> str:
    with pytest.raises(InvalidLicenseError) as excinfo:
        verify_license(token, public_keys, issuer=ISSUER, **kwargs)  # type: ignore[arg-type]
    return excinfo.value.reason


def payload_of(key: SigningKey) -> str:
    token = live_token(key)
    return token.split(".")[1]


def test_alg_none_is_refused(key: SigningKey, public_keys: dict) -> None:
    header = segment({"alg": "none", "kid": key.kid, "typ": "JWT"})
    assert "none" in refused(f"{header}.{payload_of(key)}.", public_keys)


def test_hs256_signed_with_the_public_pem_is_refused(key: SigningKey, public_keys: dict) -> None:
    # The key-confusion attack: a verifier trusting the header's alg would check this HMAC with
    # the public key bytes as the secret, and the public key is, well, public.
    header = segment({"alg": "HS256", "kid": key.kid, "typ": "JWT"})
    signing_input = f"{header}.{payload_of(key)}"
    mac = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    reason = refused(f"{signing_input}.{b64url(mac)}", public_keys)
    assert "HS256" in reason


def test_hs256_with_a_plain_secret_is_refused(key: SigningKey, public_keys: dict) -> None:
    token = jwt.encode(
        {"sub": "cust_abc123", "iss": ISSUER, "exp": int(time.time()) + 60, "iat": 0},
        "a-secret-that-is-at-least-32-bytes-long!",
        algorithm="HS256",
        headers={"kid": key.kid},
    )
    assert "HS256" in refused(token, public_keys)


def test_a_foreign_key_with_our_kid_is_refused(key: SigningKey, public_keys: dict) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_key = SigningKey(
        kid=key.kid, private_key=foreign, public_key=foreign.public_key(), public_pem=""
    )
    assert "signature" in refused(live_token(forged_key), public_keys)


def test_a_tampered_payload_is_refused(key: SigningKey, public_keys: dict) -> None:
    header, payload, signature = live_token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["features"]["maxDevices"] = 100_000
    assert "signature" in refused(f"{header}.{segment(claims)}.{signature}", public_keys)


def test_missing_kid_is_refused(key: SigningKey, public_keys: dict) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "c", "iss": ISSUER, "iat": now, "exp": now + 60}, key.private_key, "RS256"
    )
    assert "kid" not in jwt.get_unverified_header(token)
    assert "kid" in refused(token, public_keys)


def test_unknown_kid_is_refused(key: SigningKey, public_keys: dict) -> None:
    stranger = SigningKey(
        kid="some-other-kid", private_key=key.private_key, public_key=key.public_key, public_pem=""
    )
    assert "unknown key" in refused(live_token(stranger), public_keys)


def test_a_non_string_kid_is_refused(key: SigningKey, public_keys: dict) -> None:
    # PyJWT will not even write such a header: build and sign it by hand.
    signing_input = f"{segment({'alg': 'RS256', 'kid': [key.kid]})}.{payload_of(key)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    refused(f"{signing_input}.{b64url(signature)}", public_keys)


def test_expired_is_refused_unless_asked_not_to(key: SigningKey, public_keys: dict) -> None:
    issued = datetime.now(UTC) - timedelta(days=40)
    token = signed_token(key, make_content(), issued, issued + timedelta(days=30))
    assert "expired" in refused(token, public_keys)
    claims = verify_license(token, public_keys, issuer=ISSUER, verify_exp=False)
    assert claims["customerId"] == "cust_abc123"


def test_a_revoked_license_is_expired_on_arrival(key: SigningKey, public_keys: dict) -> None:
    content = make_content(revoked=True, revoked_reason="fraud")
    issued = issue_license(
        content,
        key,
        now=datetime.now(UTC) - timedelta(seconds=2),
        issuer=ISSUER,
        grace_days=7,
        max_days=365,
    )
    assert "expired" in refused(issued.token, public_keys)
    claims = verify_license(issued.token, public_keys, issuer=ISSUER, verify_exp=False)
    assert claims["subscription"]["status"] == "canceled"
    assert claims["revocation"] == {"revoked": True, "reason": "revoked"}


def test_wrong_issuer_is_refused(key: SigningKey, public_keys: dict) -> None:
    now = datetime.now(UTC)
    token = signed_token(key, make_content(), now, now + timedelta(days=1), issuer="evil-corp")
    assert "issuer" in refused(token, public_keys)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "....."])
def test_malformed_tokens_are_refused(token: str, public_keys: dict) -> None:
    refused(token, public_keys)


def test_missing_registered_claims_are_refused(key: SigningKey, public_keys: dict) -> None:
    # Signed by us but without iss/sub/iat: not a license.
    token = sign_license({"exp": int(time.time()) + 60}, key)
    refused(token, public_keys)
