"""What a plan change sends Stripe for a subscription's items, and in which order.

A subscription to a metered plan carries two items: the plan's flat price and its metered overage
price (`core.billing.metering.meters`). A plan change moves both. An upgrade is a pending update
(`payment_behavior=pending_if_incomplete`: Stripe applies it only once its invoice is paid), and a
pending update may only change the price or quantity of existing items: Stripe refuses adding or
deleting an item in it (docs.stripe.com/billing/subscriptions/pending-updates-reference). So the
overage item is added or removed in ordinary updates around it, ordered so the customer never
carries an overage item on a plan that does not meter it, nor lacks one on a plan that does.
"""

from __future__ import annotations

from typing import Any

from core.billing.gateway import StripeGateway
from core.billing.metering.meters import (
    is_metered,
    overage_item,
    overage_item_updates,
    overage_price_for_plan,
)
from core.billing.metering.moves import fit_overage_item, prepare_move
from core.billing.sync import subscription_item
from core.db import Transaction
from core.errors import ConflictError
from core.plans import Plan

Obj = dict[str, Any]


def _flat_price_swap(sub: Obj, price_id: str) -> list[Obj]:
    item = subscription_item(sub)
    assert item is not None
    if (item.get("price") or {}).get("id") == price_id:
        return []
    return [{"id": item["id"], "price": price_id}]


def downgrade(
    transaction: Transaction,
    gateway: StripeGateway,
    sub: Obj,
    price_id: str,
    overage: str | None,
    with_change: Obj,
) -> Obj:
    """One update, credited on the next invoice: the flat price swapped, and the overage item
    made to match the new plan (swapped, added, or removed) in the same step, so no moment
    bills overage at another plan's terms. `with_change` (un-cancelling, a discount) goes in
    the same update, or alone when no item changes."""
    items = [*_flat_price_swap(sub, price_id), *overage_item_updates(sub, overage)]
    # The unsent meter events first, billed under the old item; classic mode migrated.
    sub = prepare_move(transaction, gateway, sub, overage)
    params: Obj = {"items": items, "proration_behavior": "create_prorations"} if items else {}
    if not params and not with_change:
        return sub
    return gateway.update_subscription(str(sub["id"]), {**params, **with_change})


def upgrade(
    transaction: Transaction,
    gateway: StripeGateway,
    sub: Obj,
    previous_plan: str,
    price_id: str,
    overage: str | None,
    with_change: Obj,
) -> Obj:
    """Charged now, applied by Stripe only once that invoice is paid (`pending_if_incomplete`).

    `with_change` (`cancel_at_period_end`, `metadata`: what a pending update may hold) goes
    inside the pending update, so it too applies only once the upgrade is paid; alone, in an
    ordinary update, when no item changes.

    A pending update may only change the price or quantity of existing items (Stripe refuses
    adding or deleting one in it), so the overage item moves in three steps:
    1. a metered plan's subscription lacking its overage item (sold before the overage prices
       existed) gets the *current* plan's item first, in an ordinary update (metered: nothing
       to prorate);
    2. the pending update swaps the flat price and the overage item's price together, so both
       change at the moment the upgrade is paid, and neither if it never is;
    3. once Stripe applied it (no `pending_update` left), what still differs from the new
       plan is fixed in an ordinary update: the overage item removed for a plan that is not
       metered (enterprise), or added for a metered plan coming from an unmetered one.
    While the upgrade waits for payment the customer keeps the old plan and its overage item;
    reconciliation finishes step 3 after the invoice is paid later.
    """
    stripe_id = str(sub["id"])
    current_overage = (
        overage_price_for_plan(gateway, Plan(previous_plan)) if is_metered(previous_plan) else None
    )
    if current_overage is not None and overage_item(sub) is None:
        sub = fit_overage_item(transaction, gateway, sub, current_overage) or sub
    swap = _flat_price_swap(sub, price_id)
    if overage is not None and overage_item(sub) is not None:
        # Both an item: the overage item's price swap (never an add or a delete), after the
        # unsent meter events were sent under the old one (and classic mode migrated).
        sub = prepare_move(transaction, gateway, sub, overage)
        swap += overage_item_updates(sub, overage)
    if swap:
        sub = gateway.update_subscription(
            stripe_id,
            {
                "items": swap,
                "proration_behavior": "always_invoice",
                "payment_behavior": "pending_if_incomplete",
                **with_change,
            },
        )
    elif with_change:
        sub = gateway.update_subscription(stripe_id, with_change)
    if sub.get("pending_update"):
        return sub
    return fit_overage_item(transaction, gateway, sub, overage) or sub


def keep_params(sub: Obj, upgrade: bool) -> Obj:
    """The parameters that keep a subscription set to cancel. `cancel_at_period_end=false`
    undoes only that flag; a `cancel_at` set on its own is cleared with `cancel_at=""`, which a
    pending update cannot carry (only `cancel_at_period_end`: 2026-09-30.endive), so an upgrade
    of such a subscription is refused rather than left to end anyway."""
    if sub.get("cancel_at_period_end"):
        return {"cancel_at_period_end": False}
    if not sub.get("cancel_at"):
        return {}
    if upgrade:
        raise ConflictError(
            f"subscription {sub['id']} is set to cancel at a date; keep it first (change it to "
            "its current plan), then upgrade",
            field="plan",
        )
    return {"cancel_at": ""}


def pending_prices(sub: Obj) -> set[str]:
    """The prices a pending update would set, once its invoice is paid."""
    items = (sub.get("pending_update") or {}).get("subscription_items") or []
    prices = [item.get("price") for item in items]
    return {str(p["id"] if isinstance(p, dict) else p) for p in prices if p}
