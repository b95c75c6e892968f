"""One envelope (docs/architecture.md, "The hot path"), read from the built application: one
pure-ASGI layer outermost does for every request what every request needs (request id, body
limit, rate-limit step, JSON errors, metrics, access log), the hot routes are entries of its
table (api/ingress_lane.py), and nothing else in the stack does that work a second time."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import Mount

from api.app import create_app
from api.envelope import Envelope
from api.ingress_lane import HotRoutes, LaneRoute
from tests.test_layout import _imported_modules, _modules

# The hot routes, served by the envelope from the table of api/ingress_lane.py.
HOT_ROUTES = {
    ("POST", "/api/usage/report"),
    ("POST", "/webhooks/stripe"),
    ("GET", "/api/licenses/current"),
    ("GET", "/api/licenses/{customer_id}"),
}
# What FastAPI itself puts between the envelope and the routes: error pages, exception handlers,
# the dependencies' exit stack, and two layers inert as the app is built (checked below).
FRAMEWORK_LAYERS = {
    "starlette.middleware.errors.ServerErrorMiddleware",
    "fastapi.telemetry._asgi.ExceptionTelemetryMiddleware",
    "fastapi._body_limit.AppBodyLimitMiddleware",
    "starlette.middleware.exceptions.ExceptionMiddleware",
    "fastapi.middleware.asyncexitstack.AsyncExitStackMiddleware",
}


def test_one_envelope_outermost_and_nothing_else_around_the_routes() -> None:
    """The built application is one pure-ASGI envelope (api/envelope.py) around FastAPI: a
    request reaches it first with the server's own scope, receive and send, it hands the rest to
    FastAPI itself, and FastAPI has no middleware of its own (no second request id, body limit,
    metrics or access log)."""
    app = create_app()
    envelope = app.envelope
    assert type(envelope) is Envelope and not issubclass(Envelope, BaseHTTPMiddleware)
    assert list(inspect.signature(Envelope.__call__).parameters) == [
        "self",
        "scope",
        "receive",
        "send",
    ]
    # Inside the envelope, FastAPI itself (its own __call__, this very app), nothing between.
    assert envelope.app.__self__ is app and envelope.app.__func__ is type(app).serve_in_framework
    seen = []

    async def first(scope: dict, receive: object, send: object) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        raise AssertionError(f"answered before the envelope: {message}")

    scope = {"type": "http", "method": "POST", "path": "/webhooks/stripe", "headers": []}
    app.envelope = first  # type: ignore[assignment]
    asyncio.run(app(scope, receive, send))
    assert [tuple(map(id, call)) for call in seen] == [(id(scope), id(receive), id(send))]

    assert app.user_middleware == []
    layer, layers = app.build_middleware_stack(), []
    while layer is not app.router:
        layers.append(f"{type(layer).__module__}.{type(layer).__qualname__}")
        layer = layer.app
    assert set(layers) <= FRAMEWORK_LAYERS, layers
    assert app.max_body_size is None and all(
        getattr(route, "max_body_size", None) is None for route in app.routes
    ), "the envelope's body limit is the only one"
    telemetry = app._telemetry
    assert not telemetry["metrics"] and not telemetry["logs"], "the envelope's are the only ones"
    mounted = [r.path for r in app.routes if isinstance(r, Mount) and hasattr(r.app, "router")]
    assert not mounted, f"applications with a stack of their own: {mounted}"


def test_the_hot_routes_are_the_envelopes_table() -> None:
    """Each hot route is an entry of the table (api/ingress_lane.py) the envelope serves,
    handled by api/, and declared to FastAPI too (the OpenAPI document)."""
    app = create_app()
    assert type(app.envelope.hot) is HotRoutes
    declared = {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, item in app.openapi()["paths"].items()
        for method in item
    }
    for method, template in sorted(HOT_ROUTES):
        path = template.replace("{customer_id}", "cust_layout-1")
        route = app.envelope.hot.route_for({"method": method, "path": path})
        assert type(route) is LaneRoute and route.template == template, (method, path)
        assert route.handle.__module__.startswith("api."), route.handle
        in_openapi = (method, re.sub(r"\{[^}]+\}", "{}", template)) in declared
        assert in_openapi, f"{method} {template} is not in the OpenAPI document"


def test_the_envelopes_work_is_done_in_the_envelope_only() -> None:
    """No module of api/ but the envelope imports the request id, the request metrics or the
    access log; the hot routes' table imports no logging or metrics at all."""
    envelope_only = {"core.logging.request_id_var", "core.metrics.HTTP_REQUESTS"}
    envelope_only |= {"core.metrics.HTTP_LATENCY"}
    found = [
        f"{path}:{line} imports {module}"
        for path in _modules("api")
        if path != Path("api/envelope.py")
        for line, module in _imported_modules(path)
        if module in envelope_only
        or path == Path("api/ingress_lane.py")
        and module in {"logging", "core.logging", "core.metrics"}
    ]
    assert not found, "that is the envelope's work (api/envelope.py):\n" + "\n".join(found)
