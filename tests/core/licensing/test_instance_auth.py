"""core.instance_auth: which licenses authenticate an instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update

from core.customers.service import create_customer
from core.db import session_scope
from core.errors import AuthenticationError
from core.licensing.keys import load_signing_key
from core.licensing.lookup import authenticate_instance
from core.licensing.revocation import reinstate_license, revoke_license
from core.licensing.service import current_license
from core.settings import get_settings
from models import License


@pytest.fixture
def issued() -> tuple[str, str]:
    with session_scope() as session:
        customer = create_customer(session, email="inst@acme.example")
        row = current_license(session, customer.customer_id)
        assert row is not None
        return customer.customer_id, row.token


def _auth(token: str | None, **kwargs: object):
    with session_scope() as session:
        return authenticate_instance(session, token, **kwargs)  # type: ignore[arg-type]


def _refused(token: str | None, fragment: str, **kwargs: object) -> None:
    with pytest.raises(AuthenticationError) as error:
        _auth(token, **kwargs)
    assert fragment in error.value.message
    assert error.value.status_code == 401


def test_a_genuine_license_authenticates(issued) -> None:
    customer_id, token = issued
    identity = _auth(token)
    assert identity.customer_id == customer_id
    assert identity.claims["customerId"] == customer_id


def test_missing_and_malformed(issued) -> None:
    _refused(None, "missing license")
    _refused("", "missing license")
    _refused("abc.def", "well-formed")


def test_forged_signature_and_unknown_kid(issued) -> None:
    _, token = issued
    claims = jwt.decode(token, options={"verify_signature": False})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(token)["kid"]
    _refused(jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid}), "signature")
    _refused(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "nope"}), "unknown key")
    _refused(jwt.encode(claims, "secret", algorithm="HS256", headers={"kid": kid}), "algorithm")


def test_genuine_signature_but_never_recorded_is_refused(issued) -> None:
    _, token = issued
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["jti"] = "not-recorded"
    key = load_signing_key(get_settings())
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    _refused(token, "not issued by this service")


def test_expired_refused_unless_allowed(issued) -> None:
    customer_id, token = issued
    # Re-sign the recorded license with an expiry in the past (same jti, recorded).
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    claims["iat"] = claims["exp"] - 100
    key = load_signing_key(get_settings())
    expired = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    _refused(expired, "expired")
    assert _auth(expired, allow_expired=True).customer_id == customer_id


def test_revoked_is_refused_even_when_expired_is_allowed(issued) -> None:
    customer_id, token = issued
    with session_scope() as session:
        revoke_license(session, customer_id, reason="test")
    _refused(token, "revoked")
    _refused(token, "revoked", allow_expired=True)


def test_revoked_row_alone_is_enough(issued) -> None:
    _, token = issued
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    with session_scope() as session:
        session.execute(
            update(License).where(License.jti == jti).values(revoked_at=datetime.now(UTC))
        )
    _refused(token, "revoked")


def test_license_expired_before_the_revocation_is_refused_too(issued) -> None:
    customer_id, token = issued
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    with session_scope() as session:
        # Already expired when the customer is revoked: revocation marks it all the same.
        session.execute(
            update(License)
            .where(License.jti == jti)
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
    with session_scope() as session:
        assert revoke_license(session, customer_id).revoked_licenses == 1
    _refused(token, "revoked", allow_expired=True)
    # And it stays refused after the reinstatement: check-in accepts expired licenses, so an old
    # (perhaps leaked) one would otherwise collect the fresh license.
    with session_scope() as session:
        reinstate_license(session, customer_id)
    _refused(token, "revoked", allow_expired=True)


def test_the_license_that_says_revoked_never_authenticates_after_reinstatement(issued) -> None:
    customer_id, _ = issued
    with session_scope() as session:
        says_revoked = revoke_license(session, customer_id, reason="chargeback").license.token
    with session_scope() as session:
        reinstate_license(session, customer_id)
    _refused(says_revoked, "revoked", allow_expired=True)


def test_the_stored_expiry_counts_not_only_the_tokens(issued) -> None:
    customer_id, token = issued
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert _auth(token).customer_id == customer_id
    # An operator cuts the license short in the database; the token's own exp is still ahead.
    with session_scope() as session:
        session.execute(
            update(License)
            .where(License.jti == jti)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    _refused(token, "expired")
    # Check-in still accepts it, so the instance can pick up its current license.
    assert _auth(token, allow_expired=True).customer_id == customer_id


def test_while_revoked_even_the_license_that_says_so_is_refused_until_reinstated(issued) -> None:
    customer_id, old_token = issued
    with session_scope() as session:
        revoke_license(session, customer_id, reason="chargeback")
    with session_scope() as session:
        says_revoked = current_license(session, customer_id).token
    assert jwt.decode(says_revoked, options={"verify_signature": False})["revocation"]["revoked"]
    # It ends at once (an instance refuses it offline); check-in, which allows expired
    # licenses, refuses it for the revocation.
    _refused(says_revoked, "revoked", allow_expired=True)

    with session_scope() as session:
        reinstate_license(session, customer_id)
    with session_scope() as session:
        fresh = current_license(session, customer_id).token
    assert _auth(fresh).customer_id == customer_id
    # The license that was revoked stays refused after the reinstatement.
    _refused(old_token, "revoked")


def test_a_repeated_forged_license_costs_one_signature_check(
    issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged check-ins cannot make the service do unlimited RSA work: a refused token is
    remembered (by digest) like a genuine one (failed attempts are also rate limited per client
    address, in the API's middleware)."""
    from core.licensing import instance_auth

    _, token = issued
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["features"]["maxDevices"] = 10_000
    kid = jwt.get_unverified_header(token)["kid"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid})
    checks: list[str] = []
    real_verify = instance_auth.verify_license

    def counting_verify(*args, **kwargs):  # type: ignore[no-untyped-def]
        checks.append(args[0])
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(instance_auth, "verify_license", counting_verify)
    for _ in range(50):
        _refused(forged, "signature", allow_expired=True)
    assert checks == [forged]
    # A genuine license is verified once too, and still authenticates.
    for _ in range(3):
        _auth(token)
    assert checks == [forged, token]
