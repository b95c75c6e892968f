from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.licensing.keys import SigningKey, generate_key_pair, jwks, load_signing_key
from core.licensing.tokens import (
    InvalidLicenseError,
    LicenseContent,
    build_claims,
    content_fingerprint,
    issue_license,
    license_expiry,
    sign_license,
    verify_license,
)
from core.plans import Plan, get_plan, plan_for_features
from core.settings import Settings

ISSUER = "zemfyre-billing"
NOW = datetime(2025, 10, 21, 10, 0, 0, tzinfo=UTC)
PERIOD_END = datetime(2025, 11, 21, 0, 0, 0, tzinfo=UTC)


def make_content(**changes: object) -> LicenseContent:
    spec = get_plan("professional")
    values: dict[str, object] = {
        "customer_id": "cust_abc123",
        "customer_name": "Acme Corporation",
        "plan": Plan.PROFESSIONAL,
        "features": spec.features,
        "limits": spec.limits,
        "is_trial": False,
        "trial_ends_at": None,
        "subscription_status": "active",
        "current_period_ends_at": PERIOD_END,
    }
    values.update(changes)
    return LicenseContent(**values)  # type: ignore[arg-type]


def signed_token(
    key: SigningKey,
    content: LicenseContent,
    issued_at: datetime,
    expires_at: datetime,
    *,
    issuer: str = ISSUER,
) -> str:
    claims = build_claims(
        content, issued_at=issued_at, expires_at=expires_at, jti="jti-1", issuer=issuer
    )
    return sign_license(claims, key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict) -> str:
    return b64url(json.dumps(obj).encode())


@pytest.fixture(scope="module")
def key_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder: Path = tmp_path_factory.mktemp("keys")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        license_private_key=None,
        license_private_key_path=folder / "private-key.pem",
        license_public_key_path=folder / "public-key.pem",
    )
    generate_key_pair(settings)
    return settings


@pytest.fixture(scope="module")
def key(key_settings: Settings) -> SigningKey:
    return load_signing_key(key_settings)


@pytest.fixture
def public_keys(key: SigningKey) -> dict[str, rsa.RSAPublicKey]:
    return {key.kid: key.public_key}


def live_token(key: SigningKey, **changes: object) -> str:
    now = datetime.now(UTC)
    return signed_token(key, make_content(**changes), now, now + timedelta(days=30))


# ---------------------------------------------------------------------------------------------
# Content


def test_content_requires_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_content(current_period_ends_at=datetime(2025, 11, 21))
    with pytest.raises(ValueError, match="timezone"):
        make_content(is_trial=True, trial_ends_at=datetime(2025, 11, 4))


def test_content_accepts_a_plan_name_but_not_an_unknown_plan() -> None:
    assert make_content(plan="starter").plan is Plan.STARTER
    with pytest.raises(ValueError):
        make_content(plan="gold")


# ---------------------------------------------------------------------------------------------
# Expiry


def expiry(content: LicenseContent, now: datetime = NOW) -> datetime:
    return license_expiry(content, now, grace_days=7, max_days=365)


def test_trial_ends_with_the_trial_without_grace() -> None:
    trial_end = NOW + timedelta(days=14)
    content = make_content(
        plan=Plan.TRIAL, is_trial=True, trial_ends_at=trial_end, subscription_status="trialing"
    )
    assert expiry(content) == trial_end


def test_trial_of_a_paid_plan_also_ends_with_the_trial() -> None:
    trial_end = NOW + timedelta(days=14)
    content = make_content(
        is_trial=True,
        trial_ends_at=trial_end,
        subscription_status="trialing",
        current_period_ends_at=trial_end,
    )
    assert expiry(content) == trial_end


def test_paid_ends_after_the_period_plus_grace() -> None:
    assert expiry(make_content()) == PERIOD_END + timedelta(days=7)
    assert expiry(make_content(subscription_status="past_due")) == PERIOD_END + timedelta(days=7)
    assert license_expiry(make_content(), NOW, grace_days=0, max_days=365) == PERIOD_END


def test_expiry_is_capped_at_max_days() -> None:
    far = make_content(current_period_ends_at=NOW + timedelta(days=800))
    assert expiry(far) == NOW + timedelta(days=365)
    assert license_expiry(make_content(), NOW, grace_days=7, max_days=10) == NOW + timedelta(
        days=10
    )
    long_trial = make_content(is_trial=True, trial_ends_at=NOW + timedelta(days=900))
    assert expiry(long_trial) == NOW + timedelta(days=365)


def test_paid_without_a_period_end_gets_max_days() -> None:
    assert expiry(make_content(current_period_ends_at=None)) == NOW + timedelta(days=365)


@pytest.mark.parametrize(
    "changes",
    [
        {"subscription_status": "canceled"},
        {"subscription_status": "expired"},
        {"subscription_status": "incomplete"},
        {"subscription_status": "unpaid"},
        {"subscription_status": "paused"},
        {"plan": Plan.TRIAL, "is_trial": True, "trial_ends_at": NOW + timedelta(days=3),
         "subscription_status": "expired"},
        {"revoked": True, "revoked_reason": "chargeback"},
    ],
)  # fmt: skip
def test_ended_content_expires_now(changes: dict) -> None:
    assert expiry(make_content(**changes)) == NOW


def test_a_past_end_never_expires_before_issue() -> None:
    lapsed = make_content(current_period_ends_at=NOW - timedelta(days=30))
    assert expiry(lapsed) == NOW
    ended_trial = make_content(is_trial=True, trial_ends_at=NOW - timedelta(days=1))
    assert expiry(ended_trial) == NOW


def test_expiry_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        license_expiry(make_content(), datetime(2025, 10, 21), grace_days=7, max_days=365)


# ---------------------------------------------------------------------------------------------
# Claims


def test_claims_have_exactly_the_seed_structure() -> None:
    issued_at = datetime.fromtimestamp(1729500000, UTC)
    expires_at = datetime.fromtimestamp(1761036000, UTC)
    claims = build_claims(
        make_content(), issued_at=issued_at, expires_at=expires_at, jti="abc", issuer=ISSUER
    )
    assert claims == {
        "customerId": "cust_abc123",
        "customerName": "Acme Corporation",
        "plan": "professional",
        "features": {
            "maxDevices": 50,
            "dataRetentionDays": 365,
            "canExportData": True,
            "hasAdvancedAlerts": True,
            "hasApiAccess": True,
            "hasMqttAccess": True,
            "hasCustomBranding": False,
        },
        "limits": {"maxUsers": 10, "maxAlertRules": 100, "maxDashboards": 20},
        "trial": {"isTrialMode": False, "expiresAt": None},
        "subscription": {"status": "active", "currentPeriodEndsAt": "2025-11-21T00:00:00Z"},
        "deviceLimit": "soft",
        "issuedAt": 1729500000,
        "expiresAt": 1761036000,
        "iss": ISSUER,
        "sub": "cust_abc123",
        "iat": 1729500000,
        "exp": 1761036000,
        "jti": "abc",
    }
    assert type(claims["plan"]) is str
    json.dumps(claims)


def test_trial_claims() -> None:
    trial_end = datetime(2025, 11, 4, 10, 0, 0, 123456, tzinfo=UTC)
    content = make_content(
        plan=Plan.TRIAL,
        features=get_plan("trial").features,
        limits=get_plan("trial").limits,
        is_trial=True,
        trial_ends_at=trial_end,
        subscription_status="trialing",
        current_period_ends_at=None,
    )
    claims = build_claims(content, issued_at=NOW, expires_at=trial_end, jti="j", issuer=ISSUER)
    assert claims["trial"] == {"isTrialMode": True, "expiresAt": "2025-11-04T10:00:00Z"}
    assert claims["subscription"] == {"status": "trialing", "currentPeriodEndsAt": None}
    assert claims["features"]["maxDevices"] == 5
    assert claims["exp"] == claims["expiresAt"] == int(trial_end.timestamp())
    assert claims["iat"] == claims["issuedAt"] == int(NOW.timestamp())


def test_non_utc_times_are_written_in_utc() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=2))
    content = make_content(current_period_ends_at=datetime(2025, 11, 21, 2, 0, tzinfo=paris))
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["subscription"]["currentPeriodEndsAt"] == "2025-11-21T00:00:00Z"


def test_revoked_claims_say_canceled_and_why() -> None:
    content = make_content(revoked=True, revoked_reason="chargeback")
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["subscription"]["status"] == "canceled"
    assert claims["revocation"] == {"revoked": True, "reason": "revoked"}  # not the note
    assert claims["exp"] == claims["iat"]
    assert "revocation" not in build_claims(
        make_content(), issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER
    )


def test_enterprise_overrides_reach_the_claims() -> None:
    spec = get_plan("enterprise")
    features, limits = plan_for_features(spec, {"features": {"maxDevices": 500}})
    content = make_content(plan=Plan.ENTERPRISE, features=features, limits=limits)
    claims = build_claims(content, issued_at=NOW, expires_at=NOW, jti="j", issuer=ISSUER)
    assert claims["features"]["maxDevices"] == 500
    assert claims["limits"]["maxUsers"] == 2_147_483_647


# ---------------------------------------------------------------------------------------------
# Signing


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


# ---------------------------------------------------------------------------------------------
# Verifying


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


# ---------------------------------------------------------------------------------------------
# Fingerprint


def test_fingerprint_is_stable_for_equal_content() -> None:
    a, b = make_content(), make_content()
    assert a is not b
    assert content_fingerprint(a) == content_fingerprint(b)
    assert len(content_fingerprint(a)) == 64
    int(content_fingerprint(a), 16)
    # Sub-second noise is not part of what the license says.
    jittered = make_content(current_period_ends_at=PERIOD_END + timedelta(microseconds=5))
    assert content_fingerprint(jittered) == content_fingerprint(a)
    # Not said by an unrevoked license, so not part of it either.
    assert content_fingerprint(make_content(revoked_reason="stale")) == content_fingerprint(a)


@pytest.mark.parametrize(
    "changes",
    [
        {"plan": Plan.STARTER},
        {"features": get_plan("starter").features},
        {"limits": get_plan("starter").limits},
        {"subscription_status": "past_due"},
        {"subscription_status": "canceled"},
        {"current_period_ends_at": PERIOD_END + timedelta(days=30)},
        {"current_period_ends_at": None},
        {"revoked": True},
        {"revoked": True, "revoked_reason": "chargeback"},
        {"is_trial": True, "trial_ends_at": PERIOD_END},
        {"customer_name": "Acme Corp"},
    ],
)
def test_fingerprint_changes_with_what_the_license_says(changes: dict) -> None:
    assert content_fingerprint(make_content(**changes)) != content_fingerprint(make_content())


def test_fingerprint_distinguishes_revocation_but_not_its_note_and_trial_ends() -> None:
    # The operator's note is not signed into the license, so changing it reissues nothing.
    revoked = content_fingerprint(make_content(revoked=True, revoked_reason="a"))
    assert revoked == content_fingerprint(make_content(revoked=True, revoked_reason="b"))
    assert revoked != content_fingerprint(make_content())
    trial = make_content(is_trial=True, trial_ends_at=PERIOD_END)
    later = dataclasses.replace(trial, trial_ends_at=PERIOD_END + timedelta(days=7))
    assert content_fingerprint(trial) != content_fingerprint(later)


# ---------------------------------------------------------------------------------------------
# issue_license


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
