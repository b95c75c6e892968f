"""The overage item going or changing price: what it metered is billed under it.

Stripe bills a metered item's usage in arrears. When a plan change (or a reconciliation repair)
removes the overage item or swaps its price mid-period, Stripe bills the usage reported so far
under the old item and price with that update (flexible billing mode, with prorations:
`meters.flexible`); an event sent afterwards counts for the new item only, and from when it
began (`days.stamp_for` stamps it at `metered_since`), so it would be billed at the next plan's
price, or by nothing when the item was removed. So before such an update the customer's
finished days not recorded yet are recorded (a change between midnight and the nightly run, or
after a run that failed: `runs.meter_customer`, the nightly run's code for one customer), and
their meter events not yet sent (those days, rises, retries) are sent, stamped as they would
have been the moment before: they bill under the item and price in force when the device-days
happened. The nightly run then finds those days recorded and records nothing twice.
"""

from __future__ import annotations

from typing import Any

from core.billing.gateway import StripeGateway, StripeUnavailableError
from core.billing.metering import runs, settling
from core.billing.metering.meters import flexible, overage_item, overage_item_updates
from core.db import Transaction

Obj = dict[str, Any]


def prepare_move(
    transaction: Transaction, gateway: StripeGateway, sub: Obj, overage_price_id: str | None
) -> Obj:
    """`sub` ready for an update making its overage item match `overage_price_id`. When that
    removes or swaps the item: the customer's finished days not recorded yet recorded, and
    their unsent meter events sent (each step commits its own transaction, as Stripe's answer
    must be kept whatever the caller's does), and a classic-mode subscription migrated to
    flexible. Unchanged when the item is only added or already matches.

    Stripe down while sending: StripeUnavailableError (a 503), so the change is made later
    rather than with device-days left to bill at the next plan's price."""
    if overage_item(sub) is None or not overage_item_updates(sub, overage_price_id):
        return sub
    meter_first(
        transaction, gateway, sub, "the plan change is not made until it does (they would be "
        "billed at the next plan's price)",
    )  # fmt: skip
    return flexible(gateway, sub)


def meter_first(transaction: Transaction, gateway: StripeGateway, sub: Obj, refusal: str) -> None:
    """Before an update or a cancel that bills the overage item's usage so far (a price swap,
    the item removed, a cancel now with its final invoice): the customer's finished days not
    recorded yet recorded and their unsent meter events sent (`runs.meter_customer`, each step
    in a transaction of its own from `transaction`), then, when any were sent, waited for until
    Stripe's meter counts them (`settling`). Nothing without an overage item. Stripe down
    while sending, or not counting them within OVERAGE_SETTLE_SECONDS: StripeUnavailableError
    (a 503) saying `refusal`."""
    item = overage_item(sub)
    if item is None:
        return
    run = runs.meter_customer(transaction, gateway, str(sub["customer"]))
    if run.stripe_down:
        raise StripeUnavailableError(
            f"Stripe did not take the period's overage meter events; {refusal}"
        )
    if run.sending.sent:
        # Stripe aggregates them asynchronously: the update must not bill before it has.
        settling.wait_until_counted(transaction, gateway, sub, item, refusal)


def fit_overage_item(
    transaction: Transaction, gateway: StripeGateway, sub: Obj, overage_price_id: str | None
) -> Obj | None:
    """Make the subscription's overage item match `overage_price_id` (add, swap or remove it)
    in an ordinary update, never a pending one (Stripe refuses adding or deleting items in a
    pending update); Stripe's answer, or None when nothing was sent.

    The usage metered so far this period goes with an item removed or swapped unless it is
    billed now: `create_prorations` makes Stripe bill it on the next invoice (`none` would drop
    it), in flexible billing mode only, after the unsent meter events were sent
    (`prepare_move`). Adding an item bills nothing.
    """
    items = overage_item_updates(sub, overage_price_id)
    if not items:
        return None
    moves_usage = overage_item(sub) is not None
    sub = prepare_move(transaction, gateway, sub, overage_price_id)
    proration = "create_prorations" if moves_usage else "none"
    return gateway.update_subscription(
        str(sub["id"]), {"items": items, "proration_behavior": proration}
    )
