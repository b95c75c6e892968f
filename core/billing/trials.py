"""Trials: starting one, and ending those whose time is up.

A customer has one subscription row. A trial is `status="trialing"` with `trial_ends_at`; when that
passes, beat marks it `expired` and reissues the license, which then says so. Subscriptions that
Stripe manages (they have a `stripe_subscription_id`) are left to Stripe's webhooks: Stripe itself
turns their trial into a paid period or ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core import audit
from core.billing import statuses
from core.billing.repository import get_subscription as get_subscription  # re-exported
from core.billing.statuses import SubscriptionStatus
from core.customers.lock import get_for_update
from core.errors import ConflictError, InvalidInputError
from core.plans import Plan, PlanSpec, UnknownPlanError, get_plan
from core.settings import get_settings
from models import Subscription, utcnow


@dataclass(frozen=True)
class TrialResult:
    subscription: Subscription
    changed: bool


def parse_plan(name: object, *, field: str = "plan") -> PlanSpec:
    """A plan from user input, or a 422 naming the field and the valid plans."""
    if name is None:
        raise InvalidInputError("plan is required", field=field)
    try:
        return get_plan(name)  # type: ignore[arg-type]
    except UnknownPlanError as exc:
        raise InvalidInputError(str(exc), field=field) from None


def new_trial(customer_id: str, spec: PlanSpec, now: datetime | None = None) -> Subscription:
    """The subscription row of a brand-new customer: a trial of `spec` for TRIAL_DAYS."""
    # Whole seconds: the license carries the trial end to the second, and so does the row.
    now = (now or utcnow()).replace(microsecond=0)
    return Subscription(
        customer_id=customer_id,
        plan=spec.plan.value,
        status=SubscriptionStatus.TRIALING,
        trial_ends_at=now + timedelta(days=get_settings().trial_days),
    )


def start_trial(session: Session, customer_id: str, plan: object) -> TrialResult:
    """Start (or switch the plan of) the customer's trial; the caller reissues the license.

    Idempotent: asking again for the same plan changes nothing. Switching plan during a trial
    keeps its end date, so the free period is never extended by asking again.
    """
    spec = parse_plan(plan)
    get_for_update(session, customer_id)
    subscription = get_subscription(session, customer_id)
    if subscription is None:
        subscription = new_trial(customer_id, spec)
        session.add(subscription)
        session.flush()
        _audit_trial(session, customer_id, None, spec.plan.value)
        return TrialResult(subscription, changed=True)
    if subscription.status not in statuses.TRIAL_STARTABLE:
        raise ConflictError(
            f"customer {customer_id} cannot start a trial: its subscription is "
            f"{subscription.status} ({subscription.plan}); trials are for new customers",
            field="customerId",
        )
    if subscription.plan == spec.plan.value:
        return TrialResult(subscription, changed=False)
    previous = subscription.plan
    subscription.plan = spec.plan.value
    session.flush()
    _audit_trial(session, customer_id, previous, spec.plan.value)
    return TrialResult(subscription, changed=True)


def _audit_trial(session: Session, customer_id: str, previous: str | None, plan: str) -> None:
    audit.record(
        session,
        "subscription.trial",
        customer_id=customer_id,
        before={"plan": previous},
        after={"plan": plan},
    )


def expire_trials(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Mark locally managed trials past their end `expired`; the customer ids it changed.

    Set-based and safe to run twice: only rows still `trialing` are selected, and they are locked
    (skipping rows another run holds) so two concurrent runs never handle the same trial.
    """
    now = now or utcnow()
    rows = session.scalars(
        select(Subscription)
        .where(
            Subscription.status == SubscriptionStatus.TRIALING,
            Subscription.trial_ends_at <= now,
            # Trials we run ourselves: never started in Stripe, or back on the trial tier after
            # a deactivation (the id of the Stripe subscription it left may stay on the row).
            or_(
                Subscription.stripe_subscription_id.is_(None),
                Subscription.plan == Plan.TRIAL.value,
            ),
        )
        .order_by(Subscription.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.status = SubscriptionStatus.EXPIRED
    session.flush()
    return [row.customer_id for row in rows]
