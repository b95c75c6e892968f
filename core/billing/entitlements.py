"""What a subscription row entitles its customer to: money follows payment.

The license reads these (`core.licensing.service.license_content`), so the rules of what each
state grants live with billing, next to the rows they read:

- `active`: to the end of the period Stripe was paid for (`paid_through_at`), plus
  LICENSE_GRACE_DAYS. A renewal moves the period forward before it is charged, so the period end
  alone grants nothing: the paid invoice does. A subscription set to cancel when its period ends
  (`cancel_at_period_end`, or `cancel_at` within the period) has no renewal to wait for: no
  grace, it ends with what was paid.
- `past_due` (the renewal charge failed, Stripe is retrying): still to the paid-through date, plus
  LICENSE_PAST_DUE_GRACE_DAYS, and the license says `past_due`. A retry that is paid grants the
  new period (the row is synced from `invoice.paid`). Trial time is never paid-through time: a
  trial whose first charge fails is paid through its start and has no grace (it is no renewal,
  and a trial has none), so its license ends, saying `past_due`, until a retry is paid.
- `unpaid`, `canceled`, `incomplete*`, `paused`: nothing; the license says so and ends now.
- `pause_collection` set on an active subscription: Stripe collects nothing, so the license says
  `paused` (nothing granted) until collection resumes.
- `trialing`: to the trial's end (a trial is the free period; no grace). Once it converts, an
  `active` subscription whose first charge is still under way keeps the trial's end plus
  LICENSE_GRACE_DAYS, as a renewal keeps the period paid before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_

from core.billing import invoices, statuses
from core.billing.statuses import SubscriptionStatus
from core.settings import get_settings
from models import Subscription, utcnow


def license_status(row: Subscription) -> str:
    """The status the license says: Stripe's, except that paused collection grants nothing."""
    if row.collection_paused and row.status in statuses.PAID_WHILE_COLLECTED:
        return SubscriptionStatus.PAUSED
    return row.status


def paid_until(row: Subscription) -> datetime | None:
    """The end of what was paid for (the period end for rows Stripe does not bill), or of the
    trial, whichever is later, while the trial runs or its first charge is under way.

    The only statement of this rule: renewal picks its candidates with it too
    (`core.licensing.service.customers_to_renew`).
    """
    if row.stripe_subscription_id and row.paid_through_at is not None:
        if row.trial_ends_at is not None and row.status in statuses.TRIAL_END_GRANTED:
            return max(row.paid_through_at, row.trial_ends_at)
        return row.paid_through_at
    return row.current_period_ends_at


def grace_days(row: Subscription | None) -> int:
    """Days a license runs past `paid_until` for the subscription `row`.

    No days for a past_due row that paid nothing since its trial: its first charge failed, which
    is no renewal, and a trial has no grace (docs/stripe.md), so nothing runs past what was paid.
    No days either for a row set to end with its period: no renewal comes. A past_due row keeps
    its past_due grace even when set to cancel: Stripe still retries the renewal it owes.
    """
    settings = get_settings()
    if row is not None and license_status(row) == SubscriptionStatus.PAST_DUE:
        return 0 if unpaid_since_trial(row) else settings.license_past_due_grace_days
    if row is not None and ends_with_period(row):
        return 0
    return settings.license_grace_days


def ends_with_period(row: Subscription) -> bool:
    """Whether the subscription is set to end when its paid period does (no renewal comes).
    The row's `cancel_at_period_end` is `stripe_ends_with_period` of the Stripe subscription
    it was synced from."""
    return row.cancel_at_period_end and row.status not in statuses.ENDED


def ends_with_period_condition() -> ColumnElement[bool]:
    """`ends_with_period` in SQL ("canceling": the customers list's badge and filter, Money at
    risk and the overview's count)."""
    return and_(
        Subscription.cancel_at_period_end.is_(True), Subscription.status.not_in(statuses.ENDED)
    )


def stripe_ends_with_period(sub: dict[str, Any]) -> bool:
    """Whether a Stripe subscription is set to end when its current period does: the one
    statement of "set to cancel", read by sync (the row's `cancel_at_period_end`) and by
    cancellation (whether to ask for it).

    Either `cancel_at_period_end` (in flexible billing mode Stripe also sets `cancel_at` to the
    period end then), or a `cancel_at` within the current period, set on its own (at a date, or
    `min_period_end`/`max_period_end`, which resolve to a time). A `cancel_at` past the period
    end lets the period renew first. A subscription with no period known yet that has a
    `cancel_at` is taken as ending with it.
    """
    if sub.get("cancel_at_period_end"):
        return True
    cancel_at, period = sub.get("cancel_at"), invoices.current_period(sub)
    if cancel_at is None or isinstance(cancel_at, bool):
        return False
    return period is None or int(cancel_at) <= period[1]


def unpaid_since_trial(row: Subscription) -> bool:
    """Whether the row had a trial and nothing was paid after it (`paid_through_at` is set to the
    trial's start by `core.billing.sync.paid_through` until a charge is paid)."""
    return (
        row.trial_ends_at is not None
        and row.paid_through_at is not None
        and row.paid_through_at <= row.trial_ends_at
    )


def access_ends_at(row: Subscription) -> datetime | None:
    """When the row's paid access ends: now-ish if it ended, the paid-through date if it is set
    to cancel, None while it renews."""
    if row.status in statuses.ENDED:
        return row.canceled_at or utcnow()
    if ends_with_period(row):
        return paid_until(row)
    return None


def access_end(row: Subscription) -> datetime | None:
    """When paid access ends, the one rule the console's pages show: as `access_ends_at` says;
    for a past_due row (which renews as far as Stripe knows) the end of what was paid plus its
    `grace_days` (none when nothing was paid since the trial); for an unpaid row (Stripe gave
    up retrying; nothing is granted) the end of what was paid."""
    ends = access_ends_at(row)
    if ends is None and row.status in statuses.PAYMENT_FAILED:
        paid = paid_until(row)
        grace = grace_days(row) if row.status == SubscriptionStatus.PAST_DUE else 0
        ends = paid + timedelta(days=grace) if paid else None
    return ends
