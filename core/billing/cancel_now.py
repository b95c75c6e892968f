"""Cancelling a Stripe subscription now (`changes.cancel_subscription(immediately=True)`,
`changes.deactivate_customer(immediately=True)`): the overage metered first, our intent on
record, then the cancel and the voids of what it will not serve."""

from __future__ import annotations

from typing import Any

from core import audit
from core.billing import invoices, statuses
from core.billing.gateway import StripeGateway
from core.billing.metering.moves import meter_first
from core.billing.statuses import SubscriptionStatus
from core.db import Transaction

Obj = dict[str, Any]

# Audited before a cancel now is sent to Stripe: reconciliation voids only for these.
CANCEL_NOW_REQUESTED = "subscription.cancel_now_requested"


def end_now(
    transaction: Transaction, gateway: StripeGateway, sub: Obj, customer_id: str, actor: str
) -> Obj:
    """Cancel `sub` now; `sub` as Stripe then says. Idempotent.

    Only a paid period is settled (a final invoice of pending prorations less the unused time,
    credited): crediting the unused part of a period nobody paid for (past_due, unpaid,
    incomplete, a renewal still a draft) would hand the customer money. Such a subscription is
    canceled without a final invoice. Unpaid invoices for time that will not be served (the
    renewal, an upgrade waiting for payment) are voided, as read before the cancel: the final
    invoice the cancel makes is collected like any other, even when its charge fails.

    The final invoice bills the overage meter as it stands at the cancel, and nothing sent
    after: so first the customer's finished days not recorded yet are recorded and their unsent
    meter events sent (`moves.meter_first`, committed in transactions of their own from
    `transaction`); Stripe down: StripeUnavailableError (503), nothing canceled.

    Intent before the write (docs/architecture.md): `CANCEL_NOW_REQUESTED` is audited, by
    `actor`, in a transaction of its own before Stripe is asked, so a cancel whose voids never
    ran (a failure after it) is known as ours to the reconciliation that finishes them.
    """
    unserved = invoices.unserved_invoices(sub)
    period = invoices.current_period(sub)
    if sub.get("status") not in statuses.STRIPE_ENDED:
        meter_first(
            transaction, gateway, sub, "the subscription is not canceled until it does (its "
            "final invoice would not bill them)",
        )  # fmt: skip
        with transaction() as own:
            audit.act_as(own, actor)
            audit.record(
                own, CANCEL_NOW_REQUESTED, customer_id=customer_id,
                after={"subscription": str(sub["id"])},
            )  # fmt: skip
        paid = sub.get("status") == SubscriptionStatus.ACTIVE and invoices.period_paid(sub)
        sub = gateway.cancel_subscription(str(sub["id"]), credit_unused=paid is not False)
    gateway.void_unserved(unserved, period)
    return sub
