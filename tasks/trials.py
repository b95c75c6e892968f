"""Beat: trials past their end become expired, and their licenses are reissued saying so."""

from __future__ import annotations

from typing import Any

from core import licenses as license_service
from core import subscriptions
from models import session_scope
from tasks.licenses import RETRY_OPTIONS
from workers.celery_app import celery_app


@celery_app.task(name="tasks.trials.expire_trials", **RETRY_OPTIONS)
def expire_trials(limit: int = 500) -> dict[str, Any]:
    """Set-based and safe to run twice: the status flip and the reissue commit together, so a
    trial is never marked expired with a license that still says it runs."""
    with session_scope() as session:
        expired = subscriptions.expire_trials(session, limit=limit)
        for customer_id in expired:
            license_service.reissue_license(session, customer_id, reason="trial expired")
    return {"expired": expired}
