"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from api import customers, health
from api.errors import install_error_handlers


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
    app.include_router(health.router)
    app.include_router(customers.router)
    return app


app = create_app()
