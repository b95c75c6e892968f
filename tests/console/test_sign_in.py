"""Signing in and out of the console: sessions, cookies, CSRF and Origin, roles."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.api_keys import hash_key
from tests.conftest import pg_scalar
from tests.console.conftest import ORIGIN, new_key, sign_in


def test_pages_need_a_session_and_send_the_browser_to_sign_in(console_client) -> None:
    answer = console_client.get("/console/customers?q=acme", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/customers%3Fq%3Dacme"
    form = console_client.get("/console/login").text
    assert ">API key</label>" in form and ">Sign in</button>" in form


def test_a_wrong_key_shows_invalid_and_sets_nothing(console_client) -> None:
    answer = console_client.post(
        "/console/login", data={"api_key": "zbk_wrong"}, headers={"Origin": ORIGIN}
    )
    assert answer.status_code == 401
    assert "Invalid API key" in answer.text
    assert "set-cookie" not in answer.headers
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0


def test_a_good_key_starts_a_session_stored_only_as_a_hash(console_client) -> None:
    answer = console_client.post(
        "/console/login",
        data={"api_key": new_key("alice@ops"), "next": "/console/customers?q=a"},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/customers?q=a"
    cookie = answer.headers["set-cookie"]
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; over https it is set (next test)
    stored = pg_scalar("SELECT session_hash FROM console_sessions")
    assert stored == hash_key(session_id) and stored != session_id
    assert console_client.get("/console/customers").status_code == 200


def test_the_cookie_is_secure_behind_a_trusted_https_proxy(console_client) -> None:
    # The test client is not a trusted proxy for uvicorn here; https as the app sees it.
    client = console_client
    client.base_url = client.base_url.copy_with(scheme="https")
    answer = client.post(
        "/console/login",
        data={"api_key": new_key("alice@ops")},
        headers={"Origin": "https://testserver"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_a_sign_in_from_another_origin_is_refused(console_client) -> None:
    answer = console_client.post(
        "/console/login",
        data={"api_key": new_key("alice@ops")},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0


def test_sign_out_ends_the_session_for_good(console_client) -> None:
    csrf = sign_in(console_client, new_key("alice@ops"))
    cookie = console_client.cookies.get("console_session")
    answer = console_client.post(
        "/console/logout",
        data={"csrf_token": csrf},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0
    console_client.cookies.set("console_session", cookie, path="/console")
    assert console_client.get("/console/customers", follow_redirects=False).status_code == 303


def test_sign_out_without_the_csrf_token_is_refused(operator) -> None:
    client, _ = operator
    answer = client.post("/console/logout", headers={"Origin": ORIGIN})
    assert answer.status_code == 403
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 1


def test_revoking_the_api_key_ends_its_sessions(console_client) -> None:
    from core.api_keys import revoke_api_key
    from core.db import session_scope

    sign_in(console_client, new_key("alice@ops"))
    with session_scope() as session:
        revoke_api_key(session, int(str(pg_scalar("SELECT id FROM api_keys"))))
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0
    assert console_client.get("/console/customers", follow_redirects=False).status_code == 303


def _age_session(idle: timedelta, age: timedelta) -> None:
    from core.db import session_scope
    from models import ConsoleSession, utcnow

    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(ConsoleSession).values(last_seen_at=now - idle, created_at=now - age)
        )


def test_an_idle_session_ends_after_30_minutes(console_client) -> None:
    sign_in(console_client, new_key("alice@ops"))
    _age_session(idle=timedelta(minutes=29), age=timedelta(hours=1))
    assert console_client.get("/console/customers", follow_redirects=False).status_code == 200
    _age_session(idle=timedelta(minutes=31), age=timedelta(hours=1))
    assert console_client.get("/console/customers", follow_redirects=False).status_code == 303


def test_a_session_ends_12_hours_after_sign_in_however_busy(console_client) -> None:
    sign_in(console_client, new_key("alice@ops"))
    _age_session(idle=timedelta(0), age=timedelta(hours=12, minutes=1))
    assert console_client.get("/console/customers", follow_redirects=False).status_code == 303


def test_a_viewer_sees_no_action_buttons_but_can_sign_out(viewer) -> None:
    client, csrf = viewer
    page = client.get("/console/customers").text
    assert "viewer" in page
    answer = client.post("/console/logout", data={"csrf_token": csrf}, headers={"Origin": ORIGIN})
    assert answer.status_code == 200  # the sign-in page, followed
    assert pg_scalar("SELECT count(*) FROM console_sessions") == 0


def test_failed_sign_ins_count_against_the_apis_failed_authentication_limit(
    console_client, monkeypatch
) -> None:
    from core.settings import get_settings
    from tests.helpers.rate_limits import forget_counters

    forget_counters()
    monkeypatch.setenv("RATE_LIMIT_FAILED_AUTH_PER_CLIENT", "3")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    try:
        good_key = new_key("alice@ops")
        statuses = [
            console_client.post(
                "/console/login", data={"api_key": f"zbk_guess{n}"}, headers={"Origin": ORIGIN}
            ).status_code
            for n in range(5)
        ]
        assert statuses[:3] == [401] * 3 and statuses[-1] == 429
        # Locked out: even the right key is not looked at, and no session starts.
        answer = console_client.post(
            "/console/login", data={"api_key": good_key}, headers={"Origin": ORIGIN}
        )
        assert answer.status_code == 429
        assert pg_scalar("SELECT count(*) FROM console_sessions") == 0
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_counters()
