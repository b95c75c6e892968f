"""What a pending update (`payment_behavior=pending_if_incomplete`) may change.

Stripe's pending updates reference
(docs.stripe.com/billing/subscriptions/pending-updates-reference): only attributes that
control proration or make a new invoice may be sent with it. On the update subscription
endpoint these are `expand`, `payment_behavior`, `proration_behavior`, `proration_date`,
`billing_cycle_anchor`, `items` (each item's `price` and `quantity` only), `trial_end`,
`trial_from_plan`, `add_invoice_items`, since 2026-05-27.dahlia `metadata`
(docs.stripe.com/changelog/dahlia/2026-05-27/pending-subscription-update-metadata) and since
2026-09-30.endive `cancel_at_period_end`
(docs.stripe.com/changelog/endive/2026-09-30/scheduled-subscription-cancellation). An item can
therefore change its price or quantity, but items cannot be added (no `id`) or removed
(`deleted`) in a pending update: Stripe refuses the request with a 400 naming the parameter,
and changes nothing.

`metadata` and `cancel_at_period_end` wait with the items: while the invoice is unpaid they are
kept in `pending_update` (`metadata`, `cancel_at_period_end`) and the subscription keeps its own;
once it is paid they are applied (metadata merged), and an expired update drops them.
"""

from __future__ import annotations

from typing import Any

from .errors import StripeError
from .forms import as_list

PENDING_IF_INCOMPLETE = "pending_if_incomplete"
PENDING_UPDATE_PARAMS = frozenset(
    {
        "expand",
        "payment_behavior",
        "proration_behavior",
        "proration_date",
        "billing_cycle_anchor",
        "items",
        "trial_end",
        "trial_from_plan",
        "add_invoice_items",
        "metadata",
        "cancel_at_period_end",
    }
)
# What a pending update holds back until its invoice is paid, besides the items.
HELD_PARAMS = ("metadata", "cancel_at_period_end")
# `id` names the item whose price or quantity changes; nothing else of an item may be sent.
PENDING_ITEM_PARAMS = frozenset({"id", "price", "quantity"})


def _refused(param: str, what: str) -> StripeError:
    return StripeError(
        400,
        f"{what} cannot be used with `payment_behavior=pending_if_incomplete`. Pending updates "
        "only support changing the `price` and `quantity` of existing subscription items, "
        "`proration_behavior`, `proration_date`, `billing_cycle_anchor`, `trial_end`, "
        "`trial_from_plan`, `add_invoice_items`, `metadata` and `cancel_at_period_end`. See "
        "https://stripe.com/docs/billing/subscriptions/pending-updates-reference.",
        param=param,
    )


def check_pending_update(params: dict[str, Any]) -> None:
    """Refuse what a pending update may not carry, as Stripe does (before anything changes)."""
    if params.get("payment_behavior") != PENDING_IF_INCOMPLETE:
        return
    for name in sorted(set(params) - PENDING_UPDATE_PARAMS):
        raise _refused(name, f"The parameter `{name}`")
    for index, entry in enumerate(as_list(params, "items")):
        if not isinstance(entry, dict):
            continue
        label = f"items[{index}]"
        if "deleted" in entry:
            raise _refused(f"{label}[deleted]", "Removing a subscription item (`deleted`)")
        if not entry.get("id"):
            raise _refused(f"{label}[price]", "Adding a subscription item (an item without `id`)")
        for name in sorted(set(entry) - PENDING_ITEM_PARAMS):
            raise _refused(f"{label}[{name}]", f"The item parameter `{name}`")


def held_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a pending update that wait for its invoice with the items."""
    if params.get("payment_behavior") != PENDING_IF_INCOMPLETE:
        return {}
    return {name: params[name] for name in HELD_PARAMS if name in params}
