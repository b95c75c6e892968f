"""Fixtures and helpers the licensing tests share: license content, a signing key of the module's
own, and tokens signed with it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.licensing.keys import SigningKey, generate_key_pair, load_signing_key
from core.licensing.tokens import LicenseContent, build_claims, sign_license
from core.plans import Plan, get_plan
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


def live_token(key: SigningKey, **changes: object) -> str:
    now = datetime.now(UTC)
    return signed_token(key, make_content(**changes), now, now + timedelta(days=30))


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
