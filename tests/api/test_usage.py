"""POST /api/usage/report and GET /api/usage/{customerId} against the real stack."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.keys import load_signing_key
from core.licensing.revocation import revoke_license
from core.licensing.service import current_license, reissue_license
from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.helpers.rate_limits import forget_counters
from tests.helpers.waiting import wait_until

# Every accepted report is processed by the (session-wide) worker; each test waits for that before
# the tables are emptied, so no task of one test runs into the next one's truncation.
pytestmark = pytest.mark.usefixtures("celery_worker")


def _pending() -> int:
    return pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL")  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _drain_reports(clean_tables: None) -> Iterator[None]:
    yield
    wait_until(lambda: _pending() == 0)


def _new_customer(email: str, plan: str = "professional") -> tuple[str, str]:
    with session_scope() as session:
        customer_id = create_customer(session, email=email, name=email, plan=plan).customer_id
        token = current_license(session, customer_id).token  # type: ignore[union-attr]
    return customer_id, token


@pytest.fixture
def customer() -> tuple[str, str]:
    return _new_customer("acme@example.com")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _camel(customer_id: str, instance: str = "us-east-1", active: int = 23, total: int = 30,
           timestamp: str | None = "2025-10-21T10:00:00Z") -> dict:  # fmt: skip
    body: dict = {
        "customerId": customer_id,
        "instanceId": instance,
        "metrics": {"activeDevices": active, "totalDevices": total},
    }
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def _count_reports() -> int:
    return pg_scalar("SELECT count(*) FROM usage_reports")  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Reporting


def test_both_body_formats_are_accepted_and_stored_the_same_way(api_client) -> None:
    camel_id, camel_token = _new_customer("camel@example.com")
    snake_id, snake_token = _new_customer("snake@example.com")
    camel = api_client.post(
        "/api/usage/report", json=_camel(camel_id), headers=_bearer(camel_token)
    )
    snake = api_client.post(
        "/api/usage/report",
        json={
            "customer_id": snake_id,
            "instance_id": "us-east-1",
            "active_devices": 23,
            "total_devices": 30,
            "timestamp": "2025-10-21T10:00:00Z",
        },
        headers=_bearer(snake_token),
    )
    assert camel.status_code == snake.status_code == 202, (camel.text, snake.text)
    assert camel.json()["status"] == snake.json()["status"] == "accepted"
    assert "duplicate" not in camel.json() and "license" not in camel.json()

    def stored(customer_id: str, token: str) -> str:
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        row = pg_scalar(
            f"SELECT concat_ws('|', instance_id, active_devices, total_devices, "
            f"reported_at AT TIME ZONE 'UTC', license_jti = '{jti}') "
            f"FROM usage_reports WHERE customer_id = '{customer_id}'"
        )
        return row  # type: ignore[return-value]

    assert stored(camel_id, camel_token) == stored(snake_id, snake_token)
    assert stored(camel_id, camel_token) == "us-east-1|23|30|2025-10-21 10:00:00|t"
    # The same report in the other format is the same report: stored once.
    again = api_client.post(
        "/api/usage/report",
        json={
            "customer_id": camel_id,
            "instance_id": "us-east-1",
            "active_devices": 23,
            "total_devices": 30,
            "timestamp": "2025-10-21T12:00:00+02:00",
        },
        headers=_bearer(camel_token),
    )
    assert again.status_code == 202
    assert again.json() == {
        "status": "accepted",
        "reportId": camel.json()["reportId"],
        "duplicate": True,
    }
    assert _count_reports() == 2


def test_usage_reports_are_limited_per_instance(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_INSTANCE", "3")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    customer_id, token = customer
    try:

        def report(instance: str, minute: int, body: dict | None = None) -> int:
            stamp = f"2025-10-21T10:{minute:02d}:00Z"
            body = body or _camel(customer_id, instance, timestamp=stamp)
            answer = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
            return answer.status_code

        assert [report("eu-1", minute) for minute in range(4)] == [202, 202, 202, 429]
        refused = api_client.post(
            "/api/usage/report", json=_camel(customer_id, "eu-1"), headers=_bearer(token)
        )
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        # Another instance of the same customer has its own allowance.
        assert report("us-1", 0) == 202
        # The snake_case body format names the same instance.
        flat = {"customer_id": customer_id, "instance_id": "eu-1", "active_devices": 1}
        assert report("eu-1", 9, {**flat, "total_devices": 2}) == 429
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_counters()
    assert _count_reports() == 4


def test_a_report_is_processed_by_a_worker(api_client, customer) -> None:
    customer_id, token = customer
    response = api_client.post(
        "/api/usage/report", json=_camel(customer_id, timestamp=None), headers=_bearer(token)
    )
    assert response.status_code == 202
    report_id = response.json()["reportId"]
    wait_until(
        lambda: pg_scalar(
            f"SELECT processed_at IS NOT NULL FROM usage_reports WHERE id={report_id}"
        )
    )
    assert (
        pg_scalar(f"SELECT active_devices FROM instance_usage WHERE customer_id = '{customer_id}'")
        == 23
    )


def test_missing_forged_and_revoked_licenses_get_401(api_client, customer) -> None:
    customer_id, token = customer
    body = _camel(customer_id)
    missing = api_client.post("/api/usage/report", json=body)
    garbage = api_client.post("/api/usage/report", json=body, headers=_bearer("not-a-jwt"))

    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_token = jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": kid})
    forged = api_client.post("/api/usage/report", json=body, headers=_bearer(forged_token))
    # Signed with the real key but never issued here (a leaked key): refused too.
    real_key = load_signing_key(get_settings())
    unknown = jwt.encode(
        {**claims, "jti": "f" * 32}, real_key.private_key, algorithm="RS256", headers={"kid": kid}
    )
    unissued = api_client.post("/api/usage/report", json=body, headers=_bearer(unknown))

    with session_scope() as session:
        revoke_license(session, customer_id, reason="chargeback")
    revoked = api_client.post("/api/usage/report", json=body, headers=_bearer(token))

    for response in (missing, garbage, forged, unissued, revoked):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert "revoked" in revoked.json()["error"]["message"]
    assert _count_reports() == 0


def test_a_license_may_only_report_for_its_own_customer(api_client, customer) -> None:
    _, token = customer
    other_id, _ = _new_customer("other@example.com")
    response = api_client.post("/api/usage/report", json=_camel(other_id), headers=_bearer(token))
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "customerId"
    assert _count_reports() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metrics": {"activeDevices": -1, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 2.5, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 4, "totalDevices": 3}}, "metrics.activeDevices"),
        ({"metrics": {"activeDevices": 1}}, "metrics.totalDevices"),
        ({"instanceId": ""}, "instanceId"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "next tuesday"}, "timestamp"),
    ],
)
def test_invalid_reports_get_422_naming_the_field_and_store_nothing(
    api_client, customer, change: dict, field: str
) -> None:
    customer_id, token = customer
    body = {**_camel(customer_id), **change}
    response = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert _count_reports() == 0


def test_a_body_that_is_not_a_json_object_gets_422(api_client, customer) -> None:
    _, token = customer
    headers = {**_bearer(token), "Content-Type": "application/json"}
    for content in (b"[1, 2]", b"{not json", b""):
        response = api_client.post("/api/usage/report", content=content, headers=headers)
        assert response.status_code == 422, (content, response.text)
        assert response.json()["error"]["field"]
    assert _count_reports() == 0


def test_a_report_slightly_ahead_of_our_clock_is_accepted(api_client, customer) -> None:
    customer_id, token = customer
    ahead = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    response = api_client.post(
        "/api/usage/report", json=_camel(customer_id, timestamp=ahead), headers=_bearer(token)
    )
    assert response.status_code == 202


def test_the_same_idempotency_key_is_stored_once(api_client, customer) -> None:
    customer_id, token = customer
    headers = {**_bearer(token), "Idempotency-Key": "report-2025-10-21"}
    body = _camel(customer_id, timestamp=None)  # the server's clock differs on each try
    first = api_client.post("/api/usage/report", json=body, headers=headers)
    second = api_client.post("/api/usage/report", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["duplicate"] is True
    assert second.json()["reportId"] == first.json()["reportId"]
    assert _count_reports() == 1
    # The key reused for other numbers is a client bug, not a duplicate.
    changed = api_client.post(
        "/api/usage/report", json=_camel(customer_id, active=1, timestamp=None), headers=headers
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["field"] == "Idempotency-Key"
    assert _count_reports() == 1


def test_a_flat_report_without_timestamp_or_key_resent_is_stored_once(api_client, customer) -> None:
    customer_id, token = customer
    body = {"customer_id": customer_id, "instance_id": "dev-1", "active_devices": 5,
            "total_devices": 10}  # fmt: skip
    # The instance retries after a dropped connection: the same body, no timestamp, no key.
    first = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    second = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "duplicate": True}
    assert _count_reports() == 1
    # Other numbers from the same instance are a new report.
    changed = api_client.post(
        "/api/usage/report", json={**body, "active_devices": 6}, headers=_bearer(token)
    )
    assert changed.status_code == 202 and "duplicate" not in changed.json()
    assert _count_reports() == 2


def test_an_instance_with_an_older_license_gets_the_current_one(api_client, customer) -> None:
    customer_id, old_token = customer
    with session_scope() as session:
        new_token = reissue_license(session, customer_id, reason="test", force=True).token  # type: ignore[union-attr]
    response = api_client.post(
        "/api/usage/report", json=_camel(customer_id), headers=_bearer(old_token)
    )
    assert response.status_code == 202
    assert response.json()["license"] == new_token
    current = api_client.post(
        "/api/usage/report", json=_camel(customer_id, instance="b"), headers=_bearer(new_token)
    )
    assert "license" not in current.json()


# ---------------------------------------------------------------------------------------------
# Reading


def _report(api_client, customer_id: str, token: str, instance: str, active: int, total: int,
            at: datetime) -> None:  # fmt: skip
    body = _camel(customer_id, instance, active, total, at.isoformat())
    response = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert response.status_code == 202, response.text


def test_summary_matches_hand_computed_numbers(api_client, admin_headers, customer) -> None:
    customer_id, token = customer  # professional: 50 devices
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # SEED's example series on one instance, one report a day for the last 7 days ...
    series = [36, 37, 38, 40, 41, 42, 42]
    for days_ago, active in zip(range(6, -1, -1), series, strict=True):
        _report(api_client, customer_id, token, "production-1", active, 45,
                today - timedelta(days=days_ago))  # fmt: skip
    # ... plus an old report outside the window, which must not count.
    _report(api_client, customer_id, token, "production-1", 1, 45, today - timedelta(days=30))
    wait_until(lambda: _pending() == 0)

    response = api_client.get(f"/api/usage/{customer_id}?days=7", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == {
        "totalReports": 7,
        "avgActive": 39.4,  # 276 / 7 = 39.43
        "peakActive": 42,
        "currentActive": 42,
        "currentTotal": 45,
        "instances": 1,
        "limit": 50,
        "remaining": 8,
        "utilization": 84.0,
        "warning": "WARNING: 84.0% of device limit used! Consider upgrading to a higher plan.",
    }
    assert body["subscription"]["plan"] == "professional"
    assert body["subscription"]["deviceLimit"] == 50
    assert body["customer"]["customerId"] == customer_id
    assert [r["activeDevices"] for r in body["reports"]] == series[::-1]
    assert body["reports"][0]["utilization"] == 84.0
    assert [d["activeDevices"] for d in body["daily"]] == series
    # The 30-day window sees the old report too.
    wide = api_client.get(f"/api/usage/{customer_id}?days=31", headers=admin_headers).json()
    assert wide["summary"]["totalReports"] == 8
    assert wide["summary"]["avgActive"] == 34.6  # 277 / 8 = 34.625


def test_current_devices_sum_the_latest_report_of_each_instance(
    api_client, admin_headers, customer
) -> None:
    customer_id, token = customer
    now = datetime.now(UTC).replace(microsecond=0)
    _report(api_client, customer_id, token, "a", 10, 12, now - timedelta(hours=2))
    _report(api_client, customer_id, token, "a", 20, 22, now - timedelta(hours=1))
    _report(api_client, customer_id, token, "b", 25, 30, now - timedelta(hours=3))
    wait_until(lambda: _pending() == 0)
    summary = api_client.get(f"/api/usage/{customer_id}", headers=admin_headers).json()["summary"]
    assert (summary["currentActive"], summary["currentTotal"], summary["instances"]) == (45, 52, 2)
    assert summary["utilization"] == 90.0 and summary["remaining"] == 5
    assert (summary["totalReports"], summary["peakActive"], summary["avgActive"]) == (3, 25, 18.3)


def test_reading_usage_needs_an_admin_key_or_the_customers_own_license(
    api_client, admin_headers, customer
) -> None:
    customer_id, token = customer
    other_id, _ = _new_customer("nosy@example.com")
    assert api_client.get(f"/api/usage/{customer_id}").status_code == 401
    assert (
        api_client.get(f"/api/usage/{customer_id}", headers=_bearer("zbk_nope")).status_code == 401
    )
    assert api_client.get(f"/api/usage/{customer_id}", headers=_bearer(token)).status_code == 200
    assert api_client.get(f"/api/usage/{other_id}", headers=_bearer(token)).status_code == 403
    missing = api_client.get("/api/usage/cust_nobody", headers=admin_headers)
    assert missing.status_code == 404
    bad_days = api_client.get(f"/api/usage/{customer_id}?days=0", headers=admin_headers)
    assert bad_days.status_code == 422 and bad_days.json()["error"]["field"] == "days"


def test_unlimited_plans_show_unlimited(api_client, admin_headers) -> None:
    customer_id, _ = _new_customer("big@example.com", plan="enterprise")
    body = api_client.get(f"/api/usage/{customer_id}", headers=admin_headers).json()
    assert body["summary"]["limit"] == body["summary"]["remaining"] == "unlimited"
    assert body["summary"]["utilization"] is None and body["summary"]["warning"] is None
    assert len(body["daily"]) == 7


def test_after_the_database_dropped_the_ingress_connections_reports_are_still_stored(
    api_client, customer
) -> None:
    customer_id, token = customer

    def report(instance: str) -> int:
        body = _camel(customer_id, instance=instance)
        return api_client.post("/api/usage/report", json=body, headers=_bearer(token)).status_code

    assert report("before") == 202
    # A database restart or failover: every connection the service holds is gone.
    pg_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    # The group that finds its connection dropped runs again on a fresh one: stored, not a 503.
    assert report("after") == 202
    assert report("later") == 202
    assert pg_scalar("SELECT count(*) FROM usage_reports") == 3


def test_a_report_that_waits_out_the_lock_timeout_gets_503_and_is_stored_when_resent(
    customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock not granted within DATABASE_LOCK_TIMEOUT_MS (a migration holding the table) is
    "retry later", never a 500; nothing is half-stored and the resend is stored once."""
    import psycopg2
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import TEST_DATABASE_URL

    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_MS", "300")
    get_settings.cache_clear()
    customer_id, token = customer
    body = _camel(customer_id, instance="locked-out")
    locker = psycopg2.connect(TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            with locker.cursor() as cursor:
                cursor.execute("LOCK TABLE usage_reports IN ACCESS EXCLUSIVE MODE")
                refused = client.post("/api/usage/report", json=body, headers=_bearer(token))
            locker.rollback()
            resent = client.post("/api/usage/report", json=body, headers=_bearer(token))
    finally:
        locker.close()
        monkeypatch.undo()
        get_settings.cache_clear()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "unavailable"
    assert refused.headers["retry-after"] == "5"
    assert resent.status_code == 202 and "duplicate" not in resent.json()
    assert _count_reports() == 1


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_timestamp_at_the_edge_of_the_calendar_is_a_422(api_client, customer, timestamp) -> None:
    customer_id, token = customer
    body = _camel(customer_id, timestamp=timestamp)
    response = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "timestamp"
    assert _count_reports() == 0


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
        body = _camel(customer_id, instance=instance)
        return api_client.post("/api/usage/report", json=body, headers=_bearer(token)).status_code

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


def test_a_device_count_beyond_usage_max_devices_is_a_422_naming_the_field(
    api_client, customer
) -> None:
    customer_id, token = customer
    most = get_settings().usage_max_devices
    body = _camel(customer_id, active=1, total=most + 1)
    refused = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "metrics.totalDevices"
    flat = {"customer_id": customer_id, "instance_id": "x", "active_devices": 2**31 - 1}
    refused = api_client.post(
        "/api/usage/report", json={**flat, "total_devices": 2**31 - 1}, headers=_bearer(token)
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "active_devices"
    assert _count_reports() == 0
    at_most = _camel(customer_id, active=most, total=most)
    assert api_client.post("/api/usage/report", json=at_most, headers=_bearer(token)).is_success


def test_one_license_inventing_instances_is_limited_per_license(
    api_client, customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every report from a new instanceId has an allowance of its own; the license's does not
    grow with them."""
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_LICENSE", "5")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    customer_id, token = customer
    try:
        statuses = [
            api_client.post(
                "/api/usage/report",
                json=_camel(customer_id, instance=f"invented-{n}"),
                headers=_bearer(token),
            )
            for n in range(8)
        ]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_counters()
    assert [answer.status_code for answer in statuses] == [202] * 5 + [429] * 3
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(statuses[-1].headers["retry-after"]) <= 3600
    assert _count_reports() == 5


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
    assert api_client.get("/api/licenses/current", headers=_bearer(token)).status_code == 200
    with session_scope() as session:
        # Revoked behind the service's back: nothing announces it.
        session.execute(
            text("UPDATE licenses SET revoked_at = now() WHERE customer_id = :c"),
            {"c": customer_id},
        )
    # Judged by what check-in read: no read of its own.
    body = _camel(customer_id, instance="after-check-in")
    assert api_client.post("/api/usage/report", json=body, headers=_bearer(token)).status_code == (
        202
    )
    with session_scope() as session:
        mark_changed(session)
    body = _camel(customer_id, instance="after-the-change")
    refused = api_client.post("/api/usage/report", json=body, headers=_bearer(token))
    assert refused.status_code == 401, refused.text
    assert api_client.get("/api/licenses/current", headers=_bearer(token)).status_code == 401
