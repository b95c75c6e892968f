"""The one subscription status vocabulary, and the named sets every domain decides by.

Stripe's statuses, plus `expired`: ours, for a trial that ran out without payment. No other module
spells a status as a raw string or keeps a set of its own: add a named set here instead.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAUSED = "paused"
    # Local only: a trial past its end that was never paid for.
    EXPIRED = "expired"


S = SubscriptionStatus

# Stripe will never bill or reactivate a subscription in these: a new one is needed.
STRIPE_ENDED = frozenset({S.CANCELED, S.INCOMPLETE_EXPIRED})
# A local row in these has ended (Stripe's ended statuses plus an expired trial).
ENDED = STRIPE_ENDED | {S.EXPIRED}
# A Stripe subscription in these still exists and may bill: a second checkout would double-bill.
BILLING = frozenset({S.ACTIVE, S.TRIALING, S.PAST_DUE, S.UNPAID, S.INCOMPLETE, S.PAUSED})
# Stripe collects invoices for these: with `pause_collection` set, none is granted (`paused`).
PAID_WHILE_COLLECTED = frozenset({S.ACTIVE, S.PAST_DUE})
# Licenses of these are renewed by beat before they expire.
LIVE = frozenset({S.TRIALING, S.ACTIVE, S.PAST_DUE})
# A license saying one of these tells the instance it may not run (it restricts itself).
NOT_ENTITLED = frozenset(
    {S.CANCELED, S.EXPIRED, S.INCOMPLETE, S.INCOMPLETE_EXPIRED, S.UNPAID, S.PAUSED}
)
# The statuses of the free trial tier's row.
TRIAL = frozenset({S.TRIALING, S.EXPIRED})
# A trial may be started or switched to another plan only in these: a customer who pays, or whose
# trial already ran out, does not get a fresh free period by asking again.
TRIAL_STARTABLE = frozenset({S.TRIALING})
# What a revoked license reports as its status: instances of every released version stop on
# exactly "canceled".
REVOKED_LICENSE_STATUS = S.CANCELED
# A Stripe subscription in these is granted at least its trial's end: during the trial (free),
# and, once converted, while the first charge is under way (ridden out with LICENSE_GRACE_DAYS,
# as a renewal's charge is from the period paid before). Never past_due: a first charge that
# failed has nothing paid to give grace on, and a trial has no grace of its own.
TRIAL_END_GRANTED = frozenset({S.TRIALING, S.ACTIVE})
# A paid subscription in these has its device overage metered to Stripe (never a trial, whether
# of the free tier or a paid plan: trial days are not billed).
METERED = frozenset({S.ACTIVE, S.PAST_DUE})
# Monthly recurring revenue counts these (not trials, not ended, not unpaid: Stripe stopped
# collecting), while collection is not paused.
RECURRING_REVENUE = frozenset({S.ACTIVE, S.PAST_DUE})
# Money at risk: a renewal charge failed (past_due, retries running) or was given up (unpaid).
PAYMENT_FAILED = frozenset({S.PAST_DUE, S.UNPAID})
