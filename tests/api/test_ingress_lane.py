"""The hot routes (api/ingress_lane.py), answered by the envelope without FastAPI, still get
what every other route gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import licenses, usage, webhooks
from api.errors import install_error_handlers
from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.service import current_license
from core.settings import get_settings
from tests.api.test_webhooks import an_event
from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import deliver

pytestmark = pytest.mark.usefixtures("celery_worker", "clean_tables")


@pytest.fixture
def license_token() -> Iterator[tuple[str, str]]:
    with session_scope() as session:
        customer_id = create_customer(session, email="lane@example.com").customer_id
        token = current_license(session, customer_id).token  # type: ignore[union-attr]
    yield customer_id, token
    wait_until(
        lambda: pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL") == 0
    )


def _report(customer_id: str, instance: str = "lane-1") -> dict:
    return {"customerId": customer_id, "instanceId": instance, "metrics": {"activeDevices": 1}}


def test_lane_answers_carry_request_ids_and_are_counted(api_client, license_token, admin_headers):
    customer_id, token = license_token
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "lane-req-1"}
    body = {**_report(customer_id), "metrics": {"activeDevices": 1, "totalDevices": 2}}
    answer = api_client.post("/api/usage/report", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-request-id"] == "lane-req-1"
    generated = api_client.post("/api/usage/report", json={}, headers={"Authorization": "Bearer x"})
    assert generated.status_code == 401 and len(generated.headers["x-request-id"]) == 32
    metrics = api_client.get("/metrics", headers=admin_headers).text
    counted = 'billing_http_requests_total{method="POST",route="/api/usage/report",status="202"}'
    assert counted in metrics


def test_a_streamed_report_over_the_body_limit_is_a_413(api_client, license_token) -> None:
    _, token = license_token
    limit = get_settings().max_request_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    answer = api_client.post(
        "/api/usage/report", content=chunks(), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "payload_too_large",
        "message": f"request body is larger than {limit} bytes",
        "field": "body",
    }


def test_the_declared_endpoints_answer_as_the_lane_does(license_token) -> None:
    """Mounted as plain FastAPI routers (no lane in front), the routes do the same work."""
    customer_id, token = license_token
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(usage.router)
    app.include_router(webhooks.router)
    app.include_router(licenses.router)
    with TestClient(app) as client:
        stored = client.post(
            "/api/usage/report",
            json={**_report(customer_id), "metrics": {"activeDevices": 3, "totalDevices": 4}},
            headers={"Authorization": f"Bearer {token}"},
        )
        refused = client.post("/webhooks/stripe", content=b"{}")
        event = deliver(client, an_event("evt_lane_1"))
        checked_in = client.get(
            "/api/licenses/current", headers={"Authorization": f"Bearer {token}"}
        )
    assert stored.status_code == 202 and stored.json()["status"] == "accepted"
    assert pg_scalar("SELECT active_devices FROM usage_reports") == 3
    assert refused.status_code == 400
    assert event.status_code == 200 and event.json()["eventId"] == "evt_lane_1"
    assert checked_in.status_code == 200, checked_in.text
    assert checked_in.json()["license"] == token and checked_in.json()["changed"] is False


def test_the_lane_shadows_no_route_but_its_own() -> None:
    """Every static path FastAPI serves stays FastAPI's, unless the lane declares that route."""
    from api.app import create_app
    from tests.security.test_authorization import app_routes

    app = create_app()
    for method, path in app_routes():
        route = app.envelope.hot.route_for({"method": method, "path": path})
        assert route is None or route.template == path, (method, path)
    claimed = app.envelope.hot.route_for({"method": "GET", "path": "/api/licenses/cust_abc-1"})
    assert claimed is not None and claimed.template == "/api/licenses/{customer_id}"
    for malformed in ("/api/licenses/bad!id", "/api/licenses/" + "x" * 65, "/api/licenses/a/b"):
        assert app.envelope.hot.route_for({"method": "GET", "path": malformed}) is None


def test_a_malformed_license_id_is_still_a_422_naming_it(api_client, admin_headers) -> None:
    answer = api_client.get("/api/licenses/bad!id", headers=admin_headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "customerId"


def test_a_client_that_goes_away_mid_body_gets_no_answer_and_is_counted_499(api_client) -> None:
    """No handler runs on half a body (no spurious 422 or bad-signature warnings)."""
    import asyncio

    from core.metrics import HTTP_REQUESTS

    app = api_client.app
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict) -> None:
        sent.append(message)

    closed = HTTP_REQUESTS.labels("POST", "/webhooks/stripe", "499")
    before = closed._value.get()
    scope = {"type": "http", "method": "POST", "path": "/webhooks/stripe", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent == []
    assert closed._value.get() == before + 1
    assert pg_scalar("SELECT count(*) FROM stripe_events") == 0


def test_the_declared_endpoints_answer_errors_as_the_envelope_does(api_client) -> None:
    """A hot handler's error takes one path (ingress_lane.answer) however the route is served:
    the same status and JSON error from the declared endpoint, even in an app with no error
    handlers of its own, as from the envelope."""
    bare = FastAPI()  # no install_error_handlers: the endpoint's answer is its own
    bare.include_router(usage.router)
    bare.include_router(webhooks.router)
    requests = [
        ("/api/usage/report", b"{}", {"Authorization": "Bearer forged"}),
        ("/webhooks/stripe", b"{}", {}),
    ]
    with TestClient(bare) as client:
        for path, body, headers in requests:
            served = client.post(path, content=body, headers=headers)
            enveloped = api_client.post(path, content=body, headers=headers)
            assert served.status_code == enveloped.status_code >= 400, (path, served.text)
            assert served.json() == enveloped.json()
            assert set(served.json()) == {"error"} and served.json()["error"]["code"]
