"""Who may call what: every route of the app, called by every kind of caller.

The routes are enumerated from the app itself, so a route added without a line in ROUTES fails
`test_every_route_is_classified`. Each route's test calls it as each caller, against real keys,
licenses and database rows, and checks the status (and that refusals use the JSON error format).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import pg_scalar
from tests.security.conftest import Callers
from tests.stripe_stand_in import StripeStandIn

# The kinds of caller, each a way of filling the Authorization header (None: no header).
CALLERS = (
    "none",
    "revoked_admin_key",
    "license_of_another_customer",
    "expired_license",
    "revoked_license",
    "own_license",
    # Last, because admin calls change state (a revoke would make the licenses above fail).
    "admin_key",
)
# Expectations: an exact status, or ADMIN_OK ("got past authentication": 2xx or a domain 4xx).
ADMIN_OK = "admin-ok"
Expected = int | str


@dataclass(frozen=True)
class RouteCase:
    expected: dict[str, Expected]
    # A body that is valid for an admin, so an admitted call reaches the domain code.
    body: Callable[[Callers], Any] | None = None


def _everyone(status: int) -> dict[str, Expected]:
    return dict.fromkeys(CALLERS, status)


PUBLIC = _everyone(200)
# Admin routes: nothing but a valid admin key gets past authentication, licenses included.
ADMIN = {**_everyone(401), "admin_key": ADMIN_OK}
# Console pages without a session: a redirect to the sign-in form, whatever the caller presents.
CONSOLE_PAGE = _everyone(303)


def _report(callers: Callers) -> dict[str, Any]:
    return {
        "customerId": callers.customer_a,
        "instanceId": "auth-matrix",
        "metrics": {"activeDevices": 1, "totalDevices": 2},
    }


ROUTES: dict[tuple[str, str], RouteCase] = {
    # Public: health, the public keys, the API documentation.
    ("GET", "/healthz"): RouteCase(PUBLIC),
    ("GET", "/readyz"): RouteCase(PUBLIC),
    ("GET", "/.well-known/jwks.json"): RouteCase(PUBLIC),
    ("GET", "/.well-known/jwks-endorsements.json"): RouteCase(PUBLIC),
    ("GET", "/api/licenses/public-key"): RouteCase(PUBLIC),
    ("GET", "/openapi.json"): RouteCase(PUBLIC),
    ("GET", "/docs"): RouteCase(PUBLIC),
    ("GET", "/docs/oauth2-redirect"): RouteCase(PUBLIC),
    ("GET", "/redoc"): RouteCase(PUBLIC),
    # Admin.
    ("GET", "/metrics"): RouteCase(ADMIN),
    ("GET", "/api/customers"): RouteCase(ADMIN),
    ("POST", "/api/customers"): RouteCase(ADMIN, body=lambda c: {"email": "new@matrix.example"}),
    ("GET", "/api/customers/{customer_id}"): RouteCase(ADMIN),
    ("GET", "/api/licenses/{customer_id}"): RouteCase(ADMIN),
    ("POST", "/api/licenses/{customer_id}/revoke"): RouteCase(
        ADMIN, body=lambda c: {"reason": "security test"}
    ),
    ("POST", "/api/licenses/{customer_id}/reinstate"): RouteCase(ADMIN),
    ("POST", "/api/licenses/{customer_id}/reissue"): RouteCase(ADMIN),
    ("GET", "/api/audit"): RouteCase(ADMIN),
    ("POST", "/api/subscriptions/create-trial"): RouteCase(
        ADMIN, body=lambda c: {"customerId": c.customer_a, "plan": "professional"}
    ),
    ("POST", "/api/subscriptions/create-checkout"): RouteCase(
        ADMIN,
        body=lambda c: {
            "customerId": c.customer_a,
            "plan": "starter",
            "successUrl": "https://example.com/ok",
            "cancelUrl": "https://example.com/cancel",
        },
    ),
    ("POST", "/api/subscriptions/{subscription_id}/upgrade"): RouteCase(
        ADMIN, body=lambda c: {"plan": "professional"}
    ),
    ("POST", "/api/subscriptions/{subscription_id}/cancel"): RouteCase(ADMIN, body=lambda c: {}),
    ("POST", "/api/subscriptions/portal"): RouteCase(
        ADMIN, body=lambda c: {"customerId": c.customer_a, "returnUrl": "https://example.com/"}
    ),
    ("GET", "/api/subscriptions/issues"): RouteCase(ADMIN),
    # Instance routes.
    ("GET", "/api/licenses/current"): RouteCase(
        {
            **_everyone(401),
            "own_license": 200,
            # Check-in has no customer in its path: B's license checks in as B.
            "license_of_another_customer": 200,
            # Deliberate (docs/licensing.md, core/licensing/instance_auth.py): an expired but
            # unrevoked license may check in, so an instance whose trial lapsed can fetch the
            # license issued since.
            "expired_license": 200,
        }
    ),
    ("POST", "/api/usage/report"): RouteCase(
        {**_everyone(401), "own_license": 202, "license_of_another_customer": 403}, body=_report
    ),
    ("GET", "/api/usage/{customer_id}"): RouteCase(
        {**_everyone(401), "own_license": 200, "license_of_another_customer": 403, "admin_key": 200}
    ),
    # Stripe authenticates by its signature, whatever else the caller presents.
    ("POST", "/webhooks/stripe"): RouteCase(_everyone(400), body=lambda c: {"id": "evt_x"}),
    # The console: no bearer credential opens a page or makes a change, only a session cookie
    # (tests/console/): pages send the browser to sign in, and a POST without the console's
    # Origin is refused before anything is read.
    ("GET", "/console"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/login"): RouteCase(PUBLIC),
    ("POST", "/console/login"): RouteCase(_everyone(403)),
    ("POST", "/console/logout"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/customers"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/customers/{customer_id}"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/customers/{customer_id}/revoke"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/customers/{customer_id}/revoke"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/customers/{customer_id}/reinstate"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/customers/{customer_id}/reissue"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/customers/{customer_id}/cancel"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/customers/{customer_id}/cancel"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/customers/{customer_id}/portal"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/audit"): RouteCase(CONSOLE_PAGE),
    # Operations pages and their actions (tests/console/test_operations_pages.py).
    ("GET", "/console/at-risk"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/events"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/licenses/{jti}"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/events/{event_id}"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/events/{event_id}/process"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/events/fetch"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/meter-events"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/meter-events/send-again"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/meter-events/settle"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/billing-issues"): RouteCase(CONSOLE_PAGE),
    ("POST", "/console/billing-issues/{issue_id}/resolve"): RouteCase(CONSOLE_PAGE),
    ("GET", "/console/customers/{customer_id}/next-invoice"): RouteCase(CONSOLE_PAGE),
}


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside (it mirrors GET)."""
    from api.app import create_app

    app = create_app()
    try:
        from fastapi.routing import iter_route_contexts

        routes: Any = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI before included-router contexts: routes are flat.
        routes = app.routes
    return {
        (method, route.path)
        for route in routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }


def test_every_route_is_classified() -> None:
    served = app_routes()
    assert served - ROUTES.keys() == set(), "new routes: add them to ROUTES with their callers"
    assert ROUTES.keys() - served == set(), "ROUTES lists routes the app no longer serves"


def _token(callers: Callers, caller: str) -> str | None:
    return {
        "none": None,
        "admin_key": callers.admin_key,
        "revoked_admin_key": callers.revoked_admin_key,
        "own_license": callers.license_a,
        "license_of_another_customer": callers.license_b,
        "expired_license": callers.expired_license_a,
        "revoked_license": callers.revoked_license,
    }[caller]


@pytest.fixture
def matrix_callers(callers: Callers, stand_in: StripeStandIn) -> Iterator[Callers]:
    # Stripe on the stand-in, so the admin calls of the Stripe routes answer as in production.
    yield callers


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_admits_exactly_its_callers(
    api_client, matrix_callers: Callers, route: tuple[str, str]
) -> None:
    method, template = route
    case = ROUTES[route]
    # Other path ids (an event, an issue) name nothing that exists.
    ids = {"customer_id": matrix_callers.customer_a, "subscription_id": "sub_missing"}
    path = template.format_map(defaultdict(lambda: "1", ids))
    outcomes: dict[str, int] = {}
    for caller in CALLERS:
        token = _token(matrix_callers, caller)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = case.body(matrix_callers) if case.body else None
        response = api_client.request(
            method, path, headers=headers, json=body, follow_redirects=False
        )
        outcomes[caller] = response.status_code
        # The console answers pages, the API its JSON error format.
        if response.status_code in (401, 403) and not template.startswith("/console"):
            error = response.json()["error"]
            assert error["code"] == ("unauthorized" if response.status_code == 401 else "forbidden")
    wanted = {caller: case.expected[caller] for caller in CALLERS}
    assert _matches(outcomes, wanted), f"{method} {template}: got {outcomes}, want {wanted}"


def _matches(outcomes: dict[str, int], wanted: dict[str, Expected]) -> bool:
    for caller, status in outcomes.items():
        expected = wanted[caller]
        if expected == ADMIN_OK:
            if not (200 <= status < 300 or status in (404, 409, 422)):
                return False
        elif status != expected:
            return False
    return True


def test_refused_usage_reports_store_nothing(api_client, callers: Callers) -> None:
    """A 401/403 on the ingress path must not leave a row behind."""
    for token in (
        callers.admin_key,
        callers.revoked_admin_key,
        callers.license_b,
        callers.expired_license_a,
        callers.revoked_license,
    ):
        response = api_client.post(
            "/api/usage/report",
            json=_report(callers),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code in (401, 403)
    assert pg_scalar("SELECT count(*) FROM usage_reports") == 0
