"""Check-in, admin reads and the usage ingress's license facts are cached per API process: every
process sees a change within 1 s.

Two real `billing api` processes share the run's database, Redis and keys. Each caches what it
served; a revocation or plan change made through one of them (or by any other process: a worker,
the CLI) must reach the other within a second, and the process that made it at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jwt
import pytest

from core.api_keys import create_api_key
from core.db import session_scope
from core.licensing.read_cache import TRUST_SECONDS
from core.licensing.revocation import revoke_license
from tests.faults.harness import RedisServer
from tests.helpers.processes import api_server

QUIET = {"LOG_LEVEL": "WARNING"}
SEEN_WITHIN = 1.0


@pytest.fixture
def two_apis() -> Iterator[tuple[str, str]]:
    with api_server(QUIET) as first, api_server(QUIET) as second:
        yield first, second


@pytest.fixture
def admin() -> dict[str, str]:
    with session_scope() as session:
        return {"Authorization": f"Bearer {create_api_key(session, 'reads').key}"}


def _new_customer(url: str, admin: dict[str, str]) -> tuple[str, str]:
    body = {"email": f"{uuid.uuid4().hex}@example.com"}
    created = httpx.post(f"{url}/api/customers", json=body, headers=admin, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["customer"]["customerId"], created.json()["license"]


def _upgrade(url: str, customer_id: str, admin: dict[str, str]) -> str:
    """A plan change (a trial of Professional) through `url`; the license it issued."""
    changed = httpx.post(
        f"{url}/api/subscriptions/create-trial",
        json={"customerId": customer_id, "plan": "professional"},
        headers=admin,
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    return str(changed.json()["license"])


def _check_in(url: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/licenses/current", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _report(url: str, token: str) -> httpx.Response:
    """A usage report (from an instance of its own each time: never a duplicate, never limited)."""
    customer_id = jwt.decode(token, options={"verify_signature": False})["customerId"]
    body = {
        "customerId": customer_id,
        "instanceId": uuid.uuid4().hex,
        "metrics": {"activeDevices": 3, "totalDevices": 5},
    }
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{url}/api/usage/report", json=body, headers=headers, timeout=10)


@contextmanager
def _kept_warm(token: str, *urls: str, call=_check_in) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Instances checking in (or reporting, `call`) all the while, so each process keeps a fresh
    cached answer (a process left idle would go to the database and prove nothing about its
    cache)."""
    stop = threading.Event()

    def check_in_until_stopped() -> None:
        while not stop.is_set():
            for url in urls:
                call(url, token)
            time.sleep(0.02)

    for url in urls:
        assert call(url, token).is_success
    thread = threading.Thread(target=check_in_until_stopped, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _first_time(check, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `check()` holds, polling as fast as a client could."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not seen within {timeout} s")


def test_a_revocation_through_one_process_is_seen_by_the_other_within_a_second(
    two_apis, admin
) -> None:
    first, second = two_apis
    customer_id, token = _new_customer(first, admin)
    with _kept_warm(token, first, second):
        time.sleep(0.5)
        revoked = httpx.post(
            f"{second}/api/licenses/{customer_id}/revoke", headers=admin, json={}, timeout=30
        )
    assert revoked.status_code == 200, revoked.text
    # The process that revoked refuses the license on its very next call.
    assert _check_in(second, token).status_code == 401
    # The other one within a second.
    assert _first_time(lambda: _check_in(first, token).status_code == 401) < SEEN_WITHIN
    assert "revoked" in _check_in(first, token).json()["error"]["message"]


def test_a_revocation_by_another_process_and_a_plan_change_reach_both(two_apis, admin) -> None:
    first, second = two_apis
    customer_id, token = _new_customer(first, admin)
    with _kept_warm(token, first, second):
        time.sleep(0.5)
        # A plan change made through the first process: the second serves the new license soon.
        upgraded = _upgrade(first, customer_id, admin)
    assert _check_in(first, token).json()["license"] == upgraded

    def second_serves_the_upgrade() -> bool:
        return _check_in(second, token).json()["license"] == upgraded

    assert _first_time(second_serves_the_upgrade) < SEEN_WITHIN
    admin_read = httpx.get(f"{second}/api/licenses/{customer_id}", headers=admin, timeout=10)
    assert admin_read.json()["license"] == upgraded

    # A revocation by neither API process (here: this one, as the CLI does it).
    with _kept_warm(upgraded, first, second):
        time.sleep(0.5)
        with session_scope() as session:
            revoke_license(session, customer_id, reason="chargeback")
    revoked_at = time.monotonic()
    for url in (first, second):
        for license_token in (upgraded, token):
            _first_time(lambda url=url, t=license_token: _check_in(url, t).status_code == 401)
    assert time.monotonic() - revoked_at < SEEN_WITHIN


def test_a_revoked_admin_key_is_refused_by_the_license_read_within_a_second(two_apis) -> None:
    from core.api_keys import revoke_api_key

    first, _ = two_apis
    with session_scope() as session:
        created = create_api_key(session, "soon revoked")
    headers = {"Authorization": f"Bearer {created.key}"}
    customer_id, _ = _new_customer(first, headers)

    def read() -> int:
        url = f"{first}/api/licenses/{customer_id}"
        return httpx.get(url, headers=headers, timeout=10).status_code

    assert read() == 200
    with session_scope() as session:
        revoke_api_key(session, created.id)
    assert _first_time(lambda: read() == 401) < SEEN_WITHIN + 0.2
    wrong = {"Authorization": "Bearer zbk_not-a-key"}
    refused = httpx.get(f"{first}/api/licenses/{customer_id}", headers=wrong, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["message"]


def test_the_usage_ingress_of_every_process_hears_of_a_plan_change_and_a_revocation(
    two_apis, admin
) -> None:
    first, second = two_apis
    customer_id, token = _new_customer(first, admin)
    with _kept_warm(token, first, second, call=_report):
        time.sleep(0.5)
        # A plan change made through the first process: reports to the second are soon answered
        # with the new license, which the instance should switch to.
        upgraded = _upgrade(first, customer_id, admin)
        assert _report(first, token).json()["license"] == upgraded
        assert _first_time(lambda: _report(second, token).json().get("license") == upgraded) < (
            SEEN_WITHIN
        )

    with _kept_warm(upgraded, first, second, call=_report):
        time.sleep(0.5)
        revoked = httpx.post(
            f"{second}/api/licenses/{customer_id}/revoke", headers=admin, json={}, timeout=30
        )
    assert revoked.status_code == 200, revoked.text
    # The process that revoked refuses the next report at once; the other within a second.
    assert _report(second, upgraded).status_code == 401
    assert _first_time(lambda: _report(first, upgraded).status_code == 401) < SEEN_WITHIN
    assert "revoked" in _report(first, upgraded).json()["error"]["message"]


def test_a_revocation_made_while_redis_is_down_is_refused_by_the_other_process(
    tmp_path, admin
) -> None:
    """The outage that used to keep a revoked license working for minutes: Redis (the processes'
    broker and rate-limit store, on disk) stopped, a revocation through one process, Redis back
    with what it held before. The
    other process, which cached the license before and stayed busy with other instances all the
    while, refuses it within TRUST_SECONDS of the revocation, for check-in and usage alike."""
    with RedisServer(tmp_path, on_disk=True) as redis_server:
        env = {
            **QUIET,
            "CELERY_BROKER_URL": redis_server.url,
            "CELERY_RESULT_BACKEND": redis_server.url,
            "RATE_LIMIT_REDIS_URL": redis_server.url,
        }
        with api_server(env) as first, api_server(env) as second:
            customer_id, token = _new_customer(first, admin)
            _, other_token = _new_customer(first, admin)
            # The first process has read the license for check-in and for the usage ingress.
            assert _check_in(first, token).status_code == 200
            assert _report(first, token).status_code == 202
            with _kept_warm(other_token, first):
                redis_server.stop()
                revoked = httpx.post(
                    f"{second}/api/licenses/{customer_id}/revoke",
                    headers=admin,
                    json={"reason": "chargeback"},
                    timeout=30,
                )
                revoked_at = time.monotonic()
                assert revoked.status_code == 200, revoked.text
                redis_server.start()
                # The first process polls on with Redis back (its other instance checks in),
                # and the bound has passed since the revocation committed.
                time.sleep(0.5)
                time.sleep(max(0.0, revoked_at + TRUST_SECONDS - time.monotonic()))
                checked_in, reported = _check_in(first, token), _report(first, token)
    assert checked_in.status_code == 401, checked_in.text
    assert "revoked" in checked_in.json()["error"]["message"]
    assert reported.status_code == 401, reported.text
