"""Stripe event tasks: handle one stored event, retrying with backoff while it fails.

Each attempt that fails is counted on the event row with its error; after the last retry the row
stays `failed` for an operator (`billing stripe events`, `billing stripe replay EVENT_ID`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from core import stripe_events
from core.errors import NotFoundError
from core.settings import get_settings
from workers.celery_app import celery_app

log = logging.getLogger(__name__)


def retry_delay(retries: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped."""
    settings = get_settings()
    return min(
        settings.stripe_event_retry_max_seconds,
        settings.stripe_event_retry_base_seconds * (2**retries),
    )


@celery_app.task(name="tasks.stripe_events.dispatch_events")
def dispatch_events(event_ids: list[str]) -> int:
    """Fan a group of newly stored events out to one task each (with its own retries).

    The ingress publishes this one task per group instead of one per event.
    """
    for event_id in event_ids:
        process_event.delay(event_id)
    return len(event_ids)


@celery_app.task(name="tasks.stripe_events.process_event", bind=True, max_retries=None)
def process_event(self: Task, event_id: str, force: bool = False) -> dict[str, Any]:
    """Handle stored Stripe event `event_id` (idempotent: a handled event is left alone)."""
    max_retries = get_settings().stripe_event_max_retries
    try:
        return stripe_events.process_event(event_id, force=force).as_dict()
    except NotFoundError:
        # The row is gone (deleted by an operator or a test): nothing left to do.
        log.warning("Stripe event %s is not stored; skipped", event_id)
        return {"eventId": event_id, "status": "missing"}
    except stripe_events.PermanentEventError as exc:
        log.error("Stripe event %s failed for good: %s", event_id, exc)
        stripe_events.record_failure(event_id, exc, final=True)
        return {"eventId": event_id, "status": stripe_events.FAILED, "note": str(exc)}
    except Exception as exc:  # noqa: BLE001 - Stripe or the database down: try again later
        final = self.request.retries >= max_retries
        stripe_events.record_failure(event_id, exc, final=final)
        if final:
            log.error("Stripe event %s failed after %s tries: %s", event_id, max_retries + 1, exc)
            return {"eventId": event_id, "status": stripe_events.FAILED, "note": str(exc)}
        delay = retry_delay(self.request.retries)
        log.warning("Stripe event %s failed (%s), retry in %.1fs", event_id, exc, delay)
        raise self.retry(countdown=delay, exc=exc) from exc
