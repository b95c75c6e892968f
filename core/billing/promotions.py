"""A promotion code given with an upgrade: applied once the upgrade's invoice is paid.

An upgrade is a pending update (`core.billing.plan_items`), which cannot carry `discounts`; a
discount applied ahead of it would stay on the old plan if the upgrade is never paid. So the
upgrade carries the promotion code's id in its metadata instead (a pending update holds metadata
until its invoice is paid, and drops it if the update expires: 2026-05-27.dahlia). Once that
metadata is on the subscription (the upgrade was paid), `apply_waiting` turns it into the
discount and clears it: at once when the upgrade is paid at once, else from the event that
reports the payment. Applying twice sets the same discount, so it is idempotent.

No Stripe write is made while a Stripe event's row is locked (it would hold up every other
handler of that event, and the sweeper, for the call's length): the event's handler only notes
that a code waits (`EventOutcome.promotion_waiting`), and the code is applied after that
transaction committed (`apply_waiting_to`: the task `tasks.billing.apply_promotion`, retried
while Stripe is down; `billing stripe replay` at once). The code itself waits in Stripe's
metadata until applied, so the hourly reconciliation applies any a lost task left behind.

A discount is added to those the subscription has: Stripe's `discounts` replaces the whole list
(docs.stripe.com/api/subscriptions/update#update_subscription-discounts), so the existing ones
are sent along (`{discount: di_…}`, reused), and a code the subscription already holds is not
sent again.
"""

from __future__ import annotations

import logging
from typing import Any

from core.billing import issues, statuses
from core.billing.gateway import StripeGateway, StripeRequestError, idempotency_key
from core.db import Transaction

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# Subscription metadata: the promotion code (promo_…) that applies once the upgrade is paid.
WAITING_KEY = "zemfyre_promotion_after_payment"


def with_upgrade(promotion: Obj | None) -> Obj:
    """The parameters an upgrade's pending update carries for `promotion` (none without one)."""
    if promotion is None:
        return {}
    return {"metadata": {WAITING_KEY: str(promotion["id"])}}


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def discount_now(sub: Obj, promotion: Obj | None) -> Obj:
    """The parameters that add `promotion` to the discounts `sub` has, in an update that needs
    no payment; none when there is no code or the subscription holds it already. `sub` is read
    with its discounts expanded (`gateway.SUBSCRIPTION_EXPAND`): each names its promotion code."""
    if promotion is None:
        return {}
    promotion_id = str(promotion["id"])
    held = [entry for entry in sub.get("discounts") or [] if _ref(entry)]
    if any(isinstance(d, dict) and _ref(d.get("promotion_code")) == promotion_id for d in held):
        return {}
    kept = [{"discount": _ref(entry)} for entry in held]
    return {"discounts": [*kept, {"promotion_code": promotion_id}]}


def waiting(sub: Obj) -> str | None:
    """The promotion code an applied (paid) upgrade left to turn into a discount."""
    if sub.get("pending_update") or sub.get("status") in statuses.STRIPE_ENDED:
        return None
    value = (sub.get("metadata") or {}).get(WAITING_KEY)
    return value if isinstance(value, str) and value else None


def apply_waiting(
    transaction: Transaction, gateway: StripeGateway, sub: Obj, customer_id: str
) -> Obj:
    """Apply the promotion code a paid upgrade left in the metadata, and clear it; `sub` as it
    is then. A code Stripe no longer accepts (expired, used up) is cleared and recorded as a
    billing issue for an operator (the upgrade stands, undiscounted), in a transaction of its
    own from `transaction` committed straight after Stripe's refusal, before the code is
    cleared: whatever becomes of the caller's transaction, the refusal is on record."""
    promotion_id = waiting(sub)
    if promotion_id is None:
        return sub
    cleared = {"metadata": {WAITING_KEY: ""}}
    # A plan change and the follow-up of its payment's event may both find the code waiting:
    # keyed on the subscription and the code, Stripe applies (and redeems) it once.
    once = idempotency_key("apply-promotion", str(sub["id"]), promotion_id)
    discount = discount_now(sub, {"id": promotion_id})
    try:
        return gateway.update_subscription(str(sub["id"]), {**discount, **cleared}, once_key=once)
    except StripeRequestError as exc:
        log.warning("promotion %s not applied to %s: %s", promotion_id, sub.get("id"), exc)
        with transaction() as session:
            issues.record_refused_promotion(
                session, customer_id, str(sub["id"]), promotion_id, str(exc)
            )
        return gateway.update_subscription(str(sub["id"]), cleared)


def apply_waiting_to(
    transaction: Transaction, gateway: StripeGateway, subscription_id: str, customer_id: str
) -> bool:
    """The follow-up of a handled event that found a code waiting (`apply_waiting` on the
    subscription as Stripe has it now); whether one was applied or refused. Call it with no
    row locked: it writes to Stripe. A refusal's billing issue is committed in a transaction of
    its own from `transaction`."""
    sub = gateway.retrieve_subscription(subscription_id)
    if waiting(sub) is None:
        return False
    apply_waiting(transaction, gateway, sub, customer_id)
    return True
