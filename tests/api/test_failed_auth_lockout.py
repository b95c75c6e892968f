"""The failed-authentication lockout (core/request_limits.py): shared by every API process,
sparing no work on unknown credentials, and never locking out a credential the process knows
to be good; Authorization headers on routes that take none do not skip the per-client limit."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.service import current_license
from core.logging import JsonFormatter
from core.settings import get_settings
from tests.helpers.processes import api_server

LOCKOUT = {
    "RATE_LIMIT_FAILED_AUTH_PER_CLIENT": "30",
    "RATE_LIMIT_WINDOW_SECONDS": "3600",
    "FORWARDED_ALLOW_IPS": "127.0.0.1",
}


def _address() -> str:
    return f"198.51.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}"


def _license(email: str) -> str:
    with session_scope() as session:
        customer_id = create_customer(session, email=email).customer_id
        return current_license(session, customer_id).token  # type: ignore[union-attr]


def _guesses(client: httpx.Client, address: str, count: int) -> list[int]:
    return [
        client.get(
            "/api/customers",
            headers={"X-Forwarded-For": address, "Authorization": f"Bearer zbk_guess{n}"},
        ).status_code
        for n in range(count)
    ]


def test_known_good_credentials_are_served_from_a_locked_out_address(
    admin_key: str, clean_tables
) -> None:
    license_token = _license("known-good@example.com")
    never_seen = _license("never-seen@example.com")
    address = _address()

    def as_client(token: str, path: str) -> int:
        headers = {"X-Forwarded-For": address, "Authorization": f"Bearer {token}"}
        return client.get(path, headers=headers).status_code

    with api_server(env=LOCKOUT) as url, httpx.Client(base_url=url, timeout=10) as client:
        # The process learns both credentials are good (a NAT's honest clients, all day).
        assert as_client(license_token, "/api/licenses/current") == 200
        assert as_client(admin_key, "/api/customers") == 200
        # An attacker behind the same address guesses 420 admin keys.
        statuses = _guesses(client, address, 420)
        assert statuses[:31] == [401] * 31 and statuses[31:] == [429] * (420 - 31)
        # The honest callers go on working...
        assert as_client(license_token, "/api/licenses/current") == 200
        assert as_client(admin_key, "/api/customers") == 200
        # ...while a credential the process has not verified costs no RSA work: 429.
        assert as_client(never_seen, "/api/licenses/current") == 429


def test_the_lockout_is_shared_between_api_processes() -> None:
    address = _address()
    with (
        api_server(env=LOCKOUT) as url_a,
        api_server(env=LOCKOUT) as url_b,
        httpx.Client(base_url=url_a, timeout=10) as a,
        httpx.Client(base_url=url_b, timeout=10) as b,
    ):
        assert _guesses(a, address, 31) == [401] * 31
        # The other process has seen none of these failures, and still refuses the next.
        assert _guesses(b, address, 1) == [429]


@pytest.mark.parametrize("path", ["/api/licenses/public-key", "/api/no-such-route"])
def test_a_bearer_on_a_route_that_takes_none_does_not_skip_the_client_limit(
    tight_limits, api_client, path: str
) -> None:
    junk = {"Authorization": "Bearer junk"}
    statuses = [api_client.get(path, headers=junk).status_code for _ in range(7)]
    assert statuses[5:] == [429, 429]


def test_the_access_log_redacts_secrets_in_the_path(api_client, caplog) -> None:
    secret = "zbk_" + "s3cr3t" * 4
    with caplog.at_level(logging.INFO, logger="api.access"):
        api_client.get(f"/api/licenses/{secret}")
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert lines and not any(secret in line for line in lines)


@pytest.fixture
def tight_lockout(tight_limits, monkeypatch: pytest.MonkeyPatch) -> None:
    """tight_limits (5 requests per address), and a lockout after 3 failed authentications."""
    monkeypatch.setenv("RATE_LIMIT_FAILED_AUTH_PER_CLIENT", "3")
    get_settings.cache_clear()


def test_guesses_on_a_path_whose_method_another_route_serves_are_locked_out(
    tight_lockout, api_client
) -> None:
    # /api/usage/report takes only POST: a GET there is GET /api/usage/{customer_id}, which
    # checks admin keys (and must not be taken for a route without credentials).
    statuses = [
        api_client.get(
            "/api/usage/report", headers={"Authorization": f"Bearer zbk_guess{n}"}
        ).status_code
        for n in range(6)
    ]
    assert statuses[:3] == [401] * 3
    assert statuses[4:] == [429, 429]


def test_junk_bearers_on_a_credentialed_route_count_against_the_address(
    tight_lockout, api_client
) -> None:
    # 422 (an id the route refuses) is no failed authentication: the address limit applies.
    path = "/api/usage/" + "c" * 70
    statuses = [
        api_client.get(path, headers={"Authorization": "Bearer junk"}).status_code for _ in range(7)
    ]
    assert 429 not in statuses[:5]
    assert statuses[5:] == [429, 429]


def test_a_known_good_credential_is_known_in_any_header_form(
    tight_lockout, api_client, clean_tables
) -> None:
    token = _license("header-forms@example.com")
    ok = api_client.get("/api/licenses/current", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    guesses = [
        api_client.get("/api/customers", headers={"Authorization": f"Bearer zbk_g{n}"})
        for n in range(5)
    ]
    assert guesses[-1].status_code == 429
    variant = {"Authorization": f"bEaReR   {token} "}
    assert api_client.get("/api/licenses/current", headers=variant).status_code == 200


def test_a_credential_one_process_verified_is_served_by_another_from_a_locked_out_address(
    clean_tables,
) -> None:
    license_token = _license("second-process@example.com")
    address = _address()
    headers = {"X-Forwarded-For": address, "Authorization": f"Bearer {license_token}"}
    with (
        api_server(env=LOCKOUT) as url_a,
        api_server(env=LOCKOUT) as url_b,
        httpx.Client(base_url=url_a, timeout=10) as a,
        httpx.Client(base_url=url_b, timeout=10) as b,
    ):
        assert a.get("/api/licenses/current", headers=headers).status_code == 200
        statuses = _guesses(a, address, 32)
        assert statuses[:31] == [401] * 31 and statuses[31] == 429
        # Process b never answered this license: it is known good all the same.
        assert b.get("/api/licenses/current", headers=headers).status_code == 200


def test_only_stripes_own_method_on_the_webhook_path_skips_the_client_limit(
    tight_limits, api_client
) -> None:
    statuses = [api_client.get("/webhooks/stripe").status_code for _ in range(7)]
    assert statuses[:5] == [405] * 5 and statuses[5:] == [429, 429]
