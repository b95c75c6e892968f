from __future__ import annotations

import socket

from workers import task_names
from workers.celery_app import celery_app


@celery_app.task(name=task_names.PING)
def ping() -> dict[str, str]:
    """Proves a worker consumes from the broker: answers with the host that ran it."""
    return {"pong": "ok", "host": socket.gethostname()}


@celery_app.task(name=task_names.PRUNE_RETENTION)
def prune_retention(dry_run: bool = False) -> dict[str, int]:
    """Nightly: rows past retention removed, per table (core/retention/); safe to run twice."""
    from core.db import session_scope
    from core.retention.pruning import prune

    return {result.table: result.rows for result in prune(session_scope, dry_run=dry_run)}
