"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api import audit, console, customers, health, licenses, metrics, subscriptions, usage, webhooks
from api.errors import install_error_handlers
from api.ingress_lane import IngressLane, LaneRoute
from api.middleware import install_middleware


class BillingApi(FastAPI):
    """FastAPI, with the hot paths (usage reports, Stripe webhooks, instance check-in, the admin
    license read) answered before it by the ingress lane (api/ingress_lane.py): routing,
    dependencies and middleware cost more than their work."""

    lane: IngressLane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.lane.route_for(scope)
            if route is not None:
                await self.lane.serve(route, self.state, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app() -> BillingApi:
    app = BillingApi(
        title="Zemfyre Billing",
        version="0.1.0",
        description=(
            "Global control plane: Stripe subscriptions, signed license keys for customer "
            "instances, usage collection."
        ),
    )
    install_error_handlers(app)
    install_middleware(app)
    app.lane = IngressLane(
        [
            LaneRoute("POST", "/api/usage/report", usage.receive_report),
            LaneRoute("POST", "/webhooks/stripe", webhooks.receive_event, credentialed=False),
            LaneRoute("GET", "/api/licenses/current", licenses.check_in_lane),
            LaneRoute(
                "GET",
                "/api/licenses/{customer_id}",
                licenses.license_lane,
                pattern=licenses.LICENSE_READ_PATH,
            ),
        ]
    )
    metrics.install_cluster_metrics()
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(audit.router)
    app.include_router(customers.router)
    app.include_router(licenses.router)
    app.include_router(subscriptions.router)
    app.include_router(usage.router)
    app.include_router(webhooks.router)
    console.install(app)
    return app


app = create_app()
