"""Every handling attempt of a stored Stripe event, kept: who or what ran it (the worker,
`billing stripe replay`, the console's "Process again"), its outcome and error, the customer it
applied to and the license it issued. The event row keeps only the count and the last error."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.licensing.service import current_license
from models import StripeEventAttempt

# Which door ran an attempt.
WORKER, CLI, CONSOLE = "worker", "cli", "console"
# An attempt that failed and is tried again later; one that failed for good is `failed`.
RETRYING = "retrying"


def record_attempt(
    session: Session,
    event_id: str,
    outcome: str,
    *,
    trigger: str = WORKER,
    actor: str | None = None,
    customer_id: str | None = None,
    license_reissued: bool = False,
    error: str | None = None,
) -> StripeEventAttempt:
    """One attempt, in the caller's transaction: the handling's own when it succeeded (so the
    attempt and its effect commit together), the failure record's when it did not."""
    license_jti = None
    if license_reissued and customer_id:
        issued = current_license(session, customer_id)
        license_jti = issued.jti if issued is not None else None
    attempt = StripeEventAttempt(
        event_id=event_id,
        outcome=outcome,
        trigger=trigger,
        actor=actor,
        customer_id=customer_id,
        license_jti=license_jti,
        error=error,
    )
    session.add(attempt)
    return attempt


def attempts_of(session: Session, event_id: str) -> list[StripeEventAttempt]:
    """An event's attempts, oldest first."""
    return list(
        session.scalars(
            select(StripeEventAttempt)
            .where(StripeEventAttempt.event_id == event_id)
            .order_by(StripeEventAttempt.id)
        )
    )
