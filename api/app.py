"""The FastAPI application."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from api import audit, console, customers, health, licenses, metrics, subscriptions, usage, webhooks
from api.deps import refuse_nul_in_query
from api.envelope import Envelope
from api.errors import install_error_handlers
from api.ingress_lane import HotRoutes, LaneRoute


class BillingApi(FastAPI):
    """FastAPI inside the envelope (api/envelope.py), which answers the hot routes (usage
    reports, Stripe webhooks, instance check-in, the admin license read) with their handlers:
    routing and dependencies cost more than their work."""

    envelope: Envelope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.envelope(scope, receive, send)

    async def serve_in_framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app() -> BillingApi:
    app = BillingApi(
        title="Zemfyre Billing",
        version="0.1.0",
        description=(
            "Global control plane: Stripe subscriptions, signed license keys for customer "
            "instances, usage collection."
        ),
        dependencies=[Depends(refuse_nul_in_query)],
        # The envelope counts, times and logs every request: FastAPI's own OpenTelemetry
        # metrics and logs would be a second set the moment a global provider is configured.
        telemetry={"metrics": False, "logs": False},
    )
    install_error_handlers(app)
    hot = HotRoutes(
        [
            LaneRoute("POST", "/api/usage/report", usage.receive_report),
            LaneRoute(
                "POST",
                "/webhooks/stripe",
                webhooks.receive_event,
                credentialed=False,
                limited=False,
            ),
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
    app.envelope = Envelope(app.serve_in_framework, hot=hot, state=app.state, openapi=app.openapi)
    return app


app = create_app()
