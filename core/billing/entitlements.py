"""What a subscription row entitles its customer to: money follows payment.

The license reads these (`core.licensing.service.license_content`), so the rules of what each
state grants live with billing, next to the rows they read:

- `active`: to the end of the period Stripe was paid for (`paid_through_at`), plus
  LICENSE_GRACE_DAYS. A renewal moves the period forward before it is charged, so the period end
  alone grants nothing: the paid invoice does.
- `past_due` (the renewal charge failed, Stripe is retrying): still to the paid-through date, plus
  LICENSE_PAST_DUE_GRACE_DAYS, and the license says `past_due`. A retry that is paid grants the
  new period (the row is synced from `invoice.paid`).
- `unpaid`, `canceled`, `incomplete*`, `paused`: nothing; the license says so and ends now.
- `pause_collection` set on an active subscription: Stripe collects nothing, so the license says
  `paused` (nothing granted) until collection resumes.
- `trialing`: to the trial's end (a trial is the free period; no grace).
"""

from __future__ import annotations

from datetime import datetime

from core.billing import statuses
from core.billing.statuses import SubscriptionStatus
from core.settings import get_settings
from models import Subscription


def license_status(row: Subscription) -> str:
    """The status the license says: Stripe's, except that paused collection grants nothing."""
    if row.collection_paused and row.status in statuses.PAID_WHILE_COLLECTED:
        return SubscriptionStatus.PAUSED
    return row.status


def paid_until(row: Subscription) -> datetime | None:
    """The end of what was paid for (the period end for rows Stripe does not bill)."""
    if row.stripe_subscription_id and row.paid_through_at is not None:
        return row.paid_through_at
    return row.current_period_ends_at


def grace_days(status: str) -> int:
    """Days a license runs past `paid_until` for a subscription in `status`."""
    settings = get_settings()
    if status == SubscriptionStatus.PAST_DUE:
        return settings.license_past_due_grace_days
    return settings.license_grace_days
