"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from api import customers, health, licenses, metrics, subscriptions, usage, webhooks
from api.errors import install_error_handlers
from api.ingress_lane import IngressLane, LaneRoute
from api.middleware import install_middleware


def create_app() -> FastAPI:
    app = FastAPI(
        title="Zemfyre Billing",
        version="0.1.0",
        description=(
            "Global control plane: Stripe subscriptions, signed license keys for customer "
            "instances, usage collection."
        ),
    )
    install_error_handlers(app)
    install_middleware(app)
    # Outermost: the two hot write paths are answered before routing (api/ingress_lane.py).
    app.add_middleware(
        IngressLane,
        routes={
            ("POST", "/api/usage/report"): LaneRoute("/api/usage/report", usage.receive_report),
            ("POST", "/webhooks/stripe"): LaneRoute(
                "/webhooks/stripe", webhooks.receive_event, credentialed=False
            ),
        },
    )
    metrics.install_cluster_metrics()
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(customers.router)
    app.include_router(licenses.router)
    app.include_router(subscriptions.router)
    app.include_router(usage.router)
    app.include_router(webhooks.router)
    return app


app = create_app()
