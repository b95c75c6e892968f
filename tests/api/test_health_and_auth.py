"""Health, readiness, the JSON error format and admin authentication."""

from __future__ import annotations

import httpx

from tests.helpers.processes import api_server, free_port


def test_healthz_and_readyz_answer_when_everything_is_up(api_client) -> None:
    assert api_client.get("/healthz").json() == {"status": "ok"}
    response = api_client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_stays_ready_and_reports_the_broker_when_redis_is_unreachable() -> None:
    """The store-first ingress answers 2xx without the broker, so readiness must not fail."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with api_server(env={"CELERY_BROKER_URL": dead_redis}) as url:
        response = httpx.get(f"{url}/readyz", timeout=15)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unavailable")


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    dead_postgres = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with api_server(env={"DATABASE_URL": dead_postgres}) as url:
        response = httpx.get(f"{url}/readyz", timeout=15)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("unavailable")
    assert body["error"]["code"] == "unavailable"
    assert "database" in body["error"]["message"]


def test_admin_route_needs_an_api_key(api_client, admin_headers) -> None:
    response = api_client.get("/api/customers")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"

    wrong = api_client.get("/api/customers", headers={"Authorization": "Bearer zbk_wrong"})
    assert wrong.status_code == 401

    response = api_client.get("/api/customers", headers=admin_headers)
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_a_revoked_api_key_stops_working(api_client, admin_key, admin_headers) -> None:
    from core.api_keys import hash_key, revoke_api_key
    from core.db import session_scope
    from models import ApiKey

    assert api_client.get("/api/customers", headers=admin_headers).status_code == 200
    with session_scope() as session:
        key_id = session.query(ApiKey).filter_by(key_hash=hash_key(admin_key)).one().id
        revoke_api_key(session, key_id)
    assert api_client.get("/api/customers", headers=admin_headers).status_code == 401


def test_validation_errors_use_the_json_error_format_and_name_the_field(
    api_client, admin_headers
) -> None:
    response = api_client.get("/api/customers?limit=-1", headers=admin_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == "limit"
    assert "limit" in error["message"]


def test_unknown_route_is_a_json_404(api_client) -> None:
    response = api_client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_docs_are_served(api_client) -> None:
    assert api_client.get("/docs").status_code == 200
    assert "/readyz" in api_client.get("/openapi.json").json()["paths"]
