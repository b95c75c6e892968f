"""Billing tasks: Stripe events (handle one stored event, retrying with backoff while it fails),
the beat jobs that keep the Stripe inbox complete (sweeper, reconciliation), and trial expiry.

Each attempt that fails is counted on the event row with its error; after the last retry the row
stays `failed` for an operator (`billing stripe events`, `billing stripe replay EVENT_ID`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from core.billing import handlers, inbox, promotions, reconcile, trials
from core.billing.gateway import StripeUnavailableError, get_gateway, stripe_configured
from core.billing.metering import runs
from core.db import session_scope
from core.errors import NotFoundError
from core.licensing.service import reissue_license
from core.settings import get_settings
from core.usage.rollups import parse_day
from tasks.licenses import RETRY_OPTIONS
from workers import task_names
from workers.celery_app import celery_app
from workers.enqueue import enqueue
from workers.metrics import record_task_outcome

log = logging.getLogger(__name__)


def retry_delay(retries: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped."""
    settings = get_settings()
    return min(
        settings.stripe_event_retry_max_seconds,
        settings.stripe_event_retry_base_seconds * (2**retries),
    )


@celery_app.task(name=task_names.PROCESS_EVENTS, bind=True)
def process_events(self: Task, event_ids: list[str]) -> list[dict[str, Any]]:
    """Handle newly stored events, each in its own transaction, in one task: the ingress
    publishes one message per group of events, and an event crosses the broker once. One whose
    attempt fails is retried on its own (`process_event`, with backoff).

    No event holds back the others: a group redelivered (a worker died on it) is split into one
    task per event, and an event whose failure cannot even be recorded (the database is down)
    goes on as a task of its own while the rest are handled here."""
    if len(event_ids) > 1 and (self.request.delivery_info or {}).get("redelivered"):
        return [_on_its_own(event_id) for event_id in event_ids]
    outcomes = []
    for event_id in event_ids:
        try:
            try:
                outcomes.append(_handle(event_id))
            except Exception as exc:  # noqa: BLE001 - Stripe or the database down: try later
                outcomes.append(_first_attempt_failed(event_id, exc))
        except Exception as exc:  # noqa: BLE001 - not even its failure recorded
            log.error("Stripe event %s: failure not recorded (%s); retried alone", event_id, exc)
            outcomes.append(_on_its_own(event_id))
    return outcomes


def _first_attempt_failed(event_id: str, exc: Exception) -> dict[str, Any]:
    final = get_settings().stripe_event_max_retries <= 0
    _record_failure(event_id, exc, final=final)
    if not final:
        log.warning("Stripe event %s failed (%s), retried on its own", event_id, exc)
        # This was the event's first attempt: the task goes on from its first retry.
        enqueue(task_names.PROCESS_EVENT, event_id, countdown=retry_delay(0), retries=1)
    return {"eventId": event_id, "status": inbox.FAILED, "note": str(exc)}


def _on_its_own(event_id: str) -> dict[str, Any]:
    """Hand an event to a task of its own (the sweeper enqueues it if the broker is down too)."""
    enqueue(task_names.PROCESS_EVENT, event_id)
    return {"eventId": event_id, "status": "requeued"}


@celery_app.task(name=task_names.PROCESS_EVENT, bind=True, max_retries=None)
def process_event(self: Task, event_id: str, force: bool = False) -> dict[str, Any]:
    """Handle stored Stripe event `event_id` (idempotent: a handled event is left alone)."""
    max_retries = get_settings().stripe_event_max_retries
    try:
        return _handle(event_id, force=force)
    except Exception as exc:  # noqa: BLE001 - Stripe or the database down: try again later
        final = self.request.retries >= max_retries
        _record_failure(event_id, exc, final=final)
        if final:
            log.error("Stripe event %s failed after %s tries: %s", event_id, max_retries + 1, exc)
            return {"eventId": event_id, "status": inbox.FAILED, "note": str(exc)}
        delay = retry_delay(self.request.retries)
        log.warning("Stripe event %s failed (%s), retry in %.1fs", event_id, exc, delay)
        raise self.retry(countdown=delay, exc=exc) from exc


def _handle(event_id: str, *, force: bool = False) -> dict[str, Any]:
    """One attempt at a stored event; raises when it may succeed later."""
    try:
        with session_scope() as session:
            outcome = handlers.process_event(session, event_id, force=force)
    except NotFoundError:
        # The row is gone (deleted by an operator or a test): nothing left to do.
        log.warning("Stripe event %s is not stored; skipped", event_id)
        return {"eventId": event_id, "status": "missing"}
    except inbox.PermanentEventError as exc:
        log.error("Stripe event %s failed for good: %s", event_id, exc)
        _record_failure(event_id, exc, final=True)
        return {"eventId": event_id, "status": inbox.FAILED, "note": str(exc)}
    if outcome.promotion_waiting and outcome.customer_id:
        # Committed, the event's row lock released: the Stripe write it asks for comes now.
        enqueue(task_names.APPLY_PROMOTION, outcome.promotion_waiting, outcome.customer_id)
    return outcome.as_dict()


@celery_app.task(name=task_names.APPLY_PROMOTION, bind=True, max_retries=None)
def apply_promotion(self: Task, subscription_id: str, customer_id: str) -> dict[str, Any]:
    """Turn the promotion code a paid upgrade left waiting into its discount (once: Stripe
    applies it under one idempotency key, and nothing is sent when none waits any more).
    Retried while Stripe is down; one whose retries ran out (or whose enqueue failed) is
    applied by the hourly reconciliation, the code waiting in Stripe meanwhile."""
    try:
        applied = promotions.apply_waiting_to(
            session_scope, get_gateway(), subscription_id, customer_id
        )
    except StripeUnavailableError as exc:
        if self.request.retries >= get_settings().stripe_event_max_retries:
            log.error("promotion of %s left to reconciliation: %s", subscription_id, exc)
            return {"subscriptionId": subscription_id, "applied": False, "note": str(exc)}
        raise self.retry(countdown=retry_delay(self.request.retries), exc=exc) from exc
    return {"subscriptionId": subscription_id, "applied": applied}


def _record_failure(event_id: str, exc: BaseException, *, final: bool) -> None:
    # Its own transaction: the attempt's transaction was rolled back with its half-done effect,
    # and the count and error must survive that.
    with session_scope() as session:
        inbox.record_failure(session, event_id, exc, final=final)


@celery_app.task(name=task_names.SWEEP_EVENTS)
def sweep_events() -> dict[str, Any]:
    """Enqueue stored events whose task never ran (the broker was down when they arrived)."""
    with session_scope() as session:
        event_ids = inbox.events_to_sweep(session)
    enqueued = [event_id for event_id in event_ids if enqueue(task_names.PROCESS_EVENT, event_id)]
    return {"found": len(event_ids), "enqueued": len(enqueued)}


# The reconciliations run again soon by beat anyway: a few spaced retries ride out a short outage.
RECONCILE_RETRIES: dict[str, Any] = {
    "autoretry_for": (Exception,),
    "retry_backoff": 30,
    "retry_backoff_max": 300,
    "max_retries": 3,
}


@celery_app.task(name=task_names.RECONCILE_EVENTS, **RECONCILE_RETRIES)
def reconcile_events(days: int | None = None) -> dict[str, Any]:
    """List Stripe's recent events and handle any the webhook never delivered."""
    if not stripe_configured():
        # Development without Stripe keys: nothing to reconcile, and no error every 15 minutes.
        return {"skipped": "STRIPE_SECRET_KEY is not set", "stored": 0}
    with session_scope() as session:
        missed = reconcile.store_missed_events(session, get_gateway(), days=days)
    new_ids = missed.stored
    for event_id in new_ids:
        enqueue(task_names.PROCESS_EVENT, event_id)
    if new_ids:
        log.warning("reconciliation found %d Stripe events the webhook missed", len(new_ids))
    return {
        "stored": len(new_ids),
        "eventIds": new_ids,
        "thinListingFailed": int(missed.thin_failed is not None),
    }


@celery_app.task(name=task_names.RECONCILE_SUBSCRIPTIONS, **RECONCILE_RETRIES)
def reconcile_subscriptions(page_size: int = 200) -> dict[str, Any]:
    """Compare every known customer's live Stripe subscriptions with its row and repair drift.

    One transaction per customer, Stripe read before its lock is taken; a failure on one
    customer is logged and the sweep goes on (the next run tries it again).
    """
    if not stripe_configured():
        return {"skipped": "STRIPE_SECRET_KEY is not set", "repaired": 0}
    gateway = get_gateway()
    checked, repaired, failed = 0, 0, []
    after = 0
    while True:
        with session_scope() as session:
            page = reconcile.customers_with_stripe(session, after=after, limit=page_size)
            after = reconcile.last_row_id(session, page)
        for customer_id in page:
            checked += 1
            try:
                with session_scope() as session:
                    repaired += reconcile.repair_customer(
                        session, gateway, customer_id, transaction=session_scope
                    )
            except Exception as exc:  # noqa: BLE001 - one customer must not stop the sweep
                log.warning("reconciliation of %s failed: %s", customer_id, exc)
                failed.append(customer_id)
        if len(page) < page_size:
            break
    for _ in range(repaired):
        record_task_outcome(task_names.RECONCILE_SUBSCRIPTIONS, "drift_repaired")
    if repaired:
        log.warning("reconciliation repaired %d subscription(s) that drifted from Stripe", repaired)
    return {"checked": checked, "repaired": repaired, "failed": failed}


@celery_app.task(name=task_names.EXPIRE_TRIALS, **RETRY_OPTIONS)
def expire_trials(limit: int = 500) -> dict[str, Any]:
    """Set-based and safe to run twice: the status flip and the reissue commit together, so a
    trial is never marked expired with a license that still says it runs."""
    with session_scope() as session:
        expired = trials.expire_trials(session, limit=limit)
        for customer_id in expired:
            reissue_license(session, customer_id, reason="trial expired")
    return {"expired": expired}


# -- device overage metering ----------------------------------------------------------------------


@celery_app.task(name=task_names.METER_USAGE, bind=True, max_retries=None)
def meter_usage(self: Task, day_iso: str | None = None) -> dict[str, Any]:
    """Send finished days' device overage to Stripe's meter, then every meter event not delivered
    yet (of any day). Default days: yesterday and the OVERAGE_RECHECK_DAYS before it. Safe to run
    again: what was recorded is never sent twice, a rise is sent as the difference."""
    if not stripe_configured():
        # Development without Stripe keys: nothing to bill, and no error every night.
        return {"skipped": "STRIPE_SECRET_KEY is not set"}
    run = runs.meter_days(session_scope, get_gateway(), parse_day(day_iso) if day_iso else None)
    summary = run.summary()
    if run.stripe_down and self.request.retries < get_settings().stripe_event_max_retries:
        log.warning("overage metering: Stripe unavailable, retrying (%s)", summary)
        raise self.retry(countdown=retry_delay(self.request.retries))
    return summary


@celery_app.task(name=task_names.SEND_METER_EVENTS, bind=True, max_retries=None)
def send_meter_events(self: Task) -> dict[str, Any]:
    """Send every meter event not delivered yet and not given up on: on beat every
    OVERAGE_EVENT_RETRY_INTERVAL_SECONDS, so an answer lost is made good while Stripe still
    refuses the identifier as a duplicate, and after an operator's `billing stripe meter-retry`."""
    if not stripe_configured():
        return {"skipped": "STRIPE_SECRET_KEY is not set"}
    sending = runs.send_unsent(session_scope, get_gateway())
    if sending.stripe_down and self.request.retries < get_settings().stripe_event_max_retries:
        log.warning("meter events: Stripe unavailable, retrying (%s)", sending.summary())
        raise self.retry(countdown=retry_delay(self.request.retries))
    return sending.summary()
