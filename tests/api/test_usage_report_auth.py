"""POST /api/usage/report is taken only with a current license of the customer it reports for,
judged by the license lookup check-in shares."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.db import session_scope
from core.licensing.keys import load_signing_key
from core.licensing.revocation import revoke_license
from core.licensing.service import reissue_license
from core.settings import get_settings
from tests.api.conftest import bearer, count_reports, new_customer, usage_body

# Each accepted report is processed by the session's worker before the tables are emptied
# (conftest's drained_reports).
pytestmark = pytest.mark.usefixtures("celery_worker", "drained_reports")


def test_missing_forged_and_revoked_licenses_get_401(api_client, customer) -> None:
    customer_id, token = customer
    body = usage_body(customer_id)
    missing = api_client.post("/api/usage/report", json=body)
    garbage = api_client.post("/api/usage/report", json=body, headers=bearer("not-a-jwt"))

    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_token = jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": kid})
    forged = api_client.post("/api/usage/report", json=body, headers=bearer(forged_token))
    # Signed with the real key but never issued here (a leaked key): refused too.
    real_key = load_signing_key(get_settings())
    unknown = jwt.encode(
        {**claims, "jti": "f" * 32}, real_key.private_key, algorithm="RS256", headers={"kid": kid}
    )
    unissued = api_client.post("/api/usage/report", json=body, headers=bearer(unknown))

    with session_scope() as session:
        revoke_license(session, customer_id, reason="chargeback")
    revoked = api_client.post("/api/usage/report", json=body, headers=bearer(token))

    for response in (missing, garbage, forged, unissued, revoked):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert "revoked" in revoked.json()["error"]["message"]
    assert count_reports() == 0


def test_a_license_may_only_report_for_its_own_customer(api_client, customer) -> None:
    _, token = customer
    other_id, _ = new_customer("other@example.com")
    response = api_client.post(
        "/api/usage/report", json=usage_body(other_id), headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "customerId"
    assert count_reports() == 0


def test_an_instance_with_an_older_license_gets_the_current_one(api_client, customer) -> None:
    customer_id, old_token = customer
    with session_scope() as session:
        new_token = reissue_license(session, customer_id, reason="test", force=True).token  # type: ignore[union-attr]
    response = api_client.post(
        "/api/usage/report", json=usage_body(customer_id), headers=bearer(old_token)
    )
    assert response.status_code == 202
    assert response.json()["license"] == new_token
    current = api_client.post(
        "/api/usage/report", json=usage_body(customer_id, instance="b"), headers=bearer(new_token)
    )
    assert "license" not in current.json()


def test_a_license_once_read_is_judged_from_the_process_cache_until_a_license_change(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usage ingress reads a presented license once and keeps its facts, as check-in does:
    no license query per group. Every issue and revocation announces itself (the read cache's
    change counter), which drops them; each API process hears of it within a second."""
    from sqlalchemy import text

    from core.licensing import read_cache
    from core.licensing.read_cache import mark_changed

    # However slow this machine, the cache stays trusted between the reports below.
    monkeypatch.setattr(read_cache, "TRUST_SECONDS", 60.0)
    customer_id, token = customer

    def report(instance: str) -> int:
        body = usage_body(customer_id, instance=instance)
        return api_client.post("/api/usage/report", json=body, headers=bearer(token)).status_code

    # A few reports: the process has polled the version key and holds the license's facts.
    assert [report(f"warm-{n}") for n in range(3)] == [202, 202, 202]
    with session_scope() as session:
        # Revoked behind the service's back: nothing announces it.
        session.execute(
            text("UPDATE licenses SET revoked_at = now() WHERE customer_id = :c"),
            {"c": customer_id},
        )
    assert report("cached") == 202
    # What every license change does: the facts are dropped and read again.
    with session_scope() as session:
        mark_changed(session)
    assert report("announced") == 401


def test_check_in_and_the_usage_ingress_share_one_license_lookup(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What check-in read of a license is what the usage ingress judges it by, and one change
    drops it for both (core/licensing/lookup.py)."""
    from sqlalchemy import text

    from core.licensing import read_cache
    from core.licensing.read_cache import mark_changed

    # However slow this machine, the cache stays trusted between the requests below.
    monkeypatch.setattr(read_cache, "TRUST_SECONDS", 60.0)
    asyncio.run(read_cache.license_read_cache().poll())  # the process has read the counter
    customer_id, token = customer
    assert api_client.get("/api/licenses/current", headers=bearer(token)).status_code == 200
    with session_scope() as session:
        # Revoked behind the service's back: nothing announces it.
        session.execute(
            text("UPDATE licenses SET revoked_at = now() WHERE customer_id = :c"),
            {"c": customer_id},
        )
    # Judged by what check-in read: no read of its own.
    body = usage_body(customer_id, instance="after-check-in")
    assert api_client.post("/api/usage/report", json=body, headers=bearer(token)).status_code == (
        202
    )
    with session_scope() as session:
        mark_changed(session)
    body = usage_body(customer_id, instance="after-the-change")
    refused = api_client.post("/api/usage/report", json=body, headers=bearer(token))
    assert refused.status_code == 401, refused.text
    assert api_client.get("/api/licenses/current", headers=bearer(token)).status_code == 401
