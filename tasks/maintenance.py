from __future__ import annotations

import socket

from workers.celery_app import celery_app


@celery_app.task(name="tasks.maintenance.ping")
def ping() -> dict[str, str]:
    """Proves a worker consumes from the broker: answers with the host that ran it."""
    return {"pong": "ok", "host": socket.gethostname()}
