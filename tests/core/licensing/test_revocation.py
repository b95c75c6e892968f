"""core.licensing.revocation: revoke and reinstate, idempotent, and revocation that lasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.db import session_scope
from core.licensing.revocation import reinstate_license, revoke_license
from core.licensing.service import current_license, reissue_license
from models import License
from tests.conftest import pg_scalar
from tests.core.licensing.test_service import _current_claims, _new, _set_subscription


def test_revoke_and_reinstate() -> None:
    cid = _new()
    with session_scope() as session:
        first = current_license(session, cid)
        assert first is not None
        first_jti = first.jti
    with session_scope() as session:
        result = revoke_license(session, cid, reason="fraud")
        assert result.revoked_licenses == 1
    claims = _current_claims(cid, verify_exp=False)
    assert claims["revocation"]["reason"] == "revoked"  # the note stays in the table
    assert pg_scalar(f"SELECT revoked_reason FROM licenses WHERE jti = '{first_jti}'") == "fraud"
    # While revoked, any other change still yields a license that says revoked.
    _set_subscription(cid, plan="starter")
    with session_scope() as session:
        reissue_license(session, cid, reason="plan")
    assert "revocation" in _current_claims(cid, verify_exp=False)
    with session_scope() as session:
        reinstate_license(session, cid)
    claims = _current_claims(cid)
    assert "revocation" not in claims and claims["plan"] == "starter"
    with session_scope() as session:
        before = pg_scalar("SELECT count(*) FROM licenses")
        reinstate_license(session, cid)
    assert pg_scalar("SELECT count(*) FROM licenses") == before


def test_revoking_twice_keeps_the_first_revocation() -> None:
    cid = _new("twice@acme.example")
    with session_scope() as session:
        first = revoke_license(session, cid, reason="abuse")
        first_at, first_jti = first.customer.license_revoked_at, first.license.jti
        assert first.revoked_licenses == 1
    with session_scope() as session:
        again = revoke_license(session, cid, reason="something else")
        assert again.customer.license_revoked_at == first_at
        assert again.customer.license_revoked_reason == "abuse"
        assert again.license.jti == first_jti
        assert again.revoked_licenses == 0


def test_every_license_of_the_customer_is_marked_expired_ones_included() -> None:
    cid = _new("all@acme.example")
    with session_scope() as session:
        old = current_license(session, cid)
        assert old is not None
        old_jti = old.jti
        # An old license, long expired, and a newer current one.
        session.execute(
            update(License)
            .where(License.jti == old_jti)
            .values(expires_at=datetime.now(UTC) - timedelta(days=30))
        )
    _set_subscription(cid, plan="starter")
    with session_scope() as session:
        reissue_license(session, cid, reason="plan")
    with session_scope() as session:
        assert revoke_license(session, cid, reason="leak").revoked_licenses == 2
    assert pg_scalar(f"SELECT revoked_reason FROM licenses WHERE jti = '{old_jti}'") == "leak"
    # The license that says revoked is itself revoked, so it never authenticates either.
    assert pg_scalar("SELECT count(*) FROM licenses WHERE revoked_at IS NULL") == 0
    with session_scope() as session:
        reinstate_license(session, cid)
    # Only the license issued by the reinstatement is usable.
    assert pg_scalar("SELECT count(*) FROM licenses WHERE revoked_at IS NULL") == 1
