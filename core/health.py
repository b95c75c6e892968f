"""Readiness checks: the database (required for any 2xx) and the broker (reported)."""

from __future__ import annotations

from celery import Celery
from sqlalchemy import text

from core.db import get_engine


def check_database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def check_broker(app: Celery, timeout: float) -> None:
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        channel = connection.default_channel
        client = getattr(channel, "client", None)
        # Redis connects lazily: only a round trip proves it answers.
        if client is not None and hasattr(client, "ping"):
            client.ping()


def readiness(app: Celery, timeout: float) -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", check_database),
        ("broker", lambda: check_broker(app, timeout)),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
            checks[name] = f"unavailable: {type(exc).__name__}"
    return checks
