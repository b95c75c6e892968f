"""License tasks: reissue on change (enqueued by other domains) and renewal (beat).

Revocation and reinstatement are not tasks: they run in-process for the API and the CLI alike
(core/licensing/revocation.py says why). Results are small summaries that never carry a license
JWT, since they are kept in the result backend and shown by Flower: whoever needs the token reads
it from the database by its jti.

Each task is idempotent: it computes the wanted state and changes only what differs, so a
redelivered or repeated task leaves the same rows. Database outages are retried with backoff;
domain errors (unknown customer, duplicate email) are final and reach the caller as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import OperationalError

from core.db import session_scope
from core.errors import NotFoundError
from core.licensing import service
from workers import task_names
from workers.celery_app import celery_app

log = logging.getLogger(__name__)

# Shared by every task that writes: a database that is down, restarting or deadlocked is retried.
RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@celery_app.task(name=task_names.REISSUE_LICENSE, **RETRY_OPTIONS)
def reissue_license(customer_id: str, reason: str = "changed") -> dict[str, Any]:
    """Reissue the customer's license if what it says changed (enqueued by other domains)."""
    try:
        with session_scope() as session:
            row = service.reissue_license(session, customer_id, reason=reason)
            return {"customerId": customer_id, "reissued": row is not None, "jti": row and row.jti}
    except NotFoundError:
        # The customer was deleted after the task was enqueued: nothing left to reissue.
        log.warning("reissue for unknown customer %s skipped", customer_id)
        return {"customerId": customer_id, "reissued": False, "jti": None}


@celery_app.task(name=task_names.RENEW_LICENSES, **RETRY_OPTIONS)
def renew_licenses(limit: int = 500) -> dict[str, Any]:
    """Beat: renew licenses of live subscriptions close to expiry, and any signed by a retired
    key. One transaction per customer, so one bad customer never holds back the others."""
    with session_scope() as session:
        candidates = service.customers_to_renew(session, limit=limit)
    renewed: list[str] = []
    for customer_id in candidates:
        try:
            with session_scope() as session:
                if service.renew_license(session, customer_id) is not None:
                    renewed.append(customer_id)
        except NotFoundError:
            continue
    return {"candidates": len(candidates), "renewed": renewed}
