"""Pending updates (`pending_if_incomplete`): held until paid, dropped when they expire."""

from __future__ import annotations

import copy

from .errors import invalid
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_metadata,
    merge_metadata,
)
from .store import Obj, changed_attributes
from .sub_shared import (
    SubscriptionParts,
    recurring_amount,
)


class PendingUpdates(SubscriptionParts):
    def _expire_on_conflict(self, sub: Obj, params: Params) -> bool:
        """An update whose `cancel_at_period_end` differs from the one a pending update holds
        expires that pending update (docs.stripe.com/changelog/endive/2026-09-30/
        scheduled-subscription-cancellation); whether it did."""
        wanted = as_bool(params, "cancel_at_period_end")
        held = (sub["pending_update"] or {}).get("cancel_at_period_end")
        if wanted is None or held is None or wanted == held:
            return False
        self._drop_pending_update(sub)
        return True

    def _drop_pending_update(self, sub: Obj) -> None:
        """Discard the pending update and void its invoice: "the invoice is voided and the
        pending update is discarded" (docs.stripe.com/billing/subscriptions/
        pending-updates-reference: "Expiration"), so paying it later applies nothing."""
        hidden = self.store.hidden_of(sub["id"])
        hidden.pop("pending_items", None)
        hidden.pop("pending_held", None)
        sub["pending_update"] = None
        invoice = self.store.table("invoice").get(hidden.pop("pending_invoice", None) or "")
        if invoice is not None and invoice["status"] == "open":
            invoice.update(status="void", amount_remaining=0, next_payment_attempt=None)
            invoice["status_transitions"]["voided_at"] = self.store.now()
            self.store.emit("invoice.voided", invoice)

    def _expire_pending_update_at_period_end(self, sub: Obj) -> None:
        """A pending update expires at the period's end at the latest (`_pend_update`)."""
        if sub["pending_update"]:
            self._drop_pending_update(sub)
            self.store.emit("customer.subscription.pending_update_expired", sub)

    def _payment_fails(self, sub: Obj, params: Params, old_amount: int) -> bool:
        behavior = as_choice(
            params,
            "payment_behavior",
            ("allow_incomplete", "default_incomplete", "error_if_incomplete",
             "pending_if_incomplete"),
        )  # fmt: skip
        declines = self.store.hidden_of(sub["customer"]).get("declines", False)
        return (
            behavior == "pending_if_incomplete" and declines and recurring_amount(sub) > old_amount
        )

    def _pend_update(self, sub: Obj, before: Obj, old_amount: int, held: Params) -> Obj:
        """`pending_if_incomplete` whose charge is declined: the invoice stays open, the items
        keep their old prices and the change (with its held metadata and cancel_at_period_end)
        waits in `pending_update` until it is paid."""
        invoice = self._proration_invoice(sub, old_amount, paid=False)
        invoice.update(attempted=True, attempt_count=1)
        wanted = copy.deepcopy(sub["items"]["data"])
        sub["items"]["data"] = copy.deepcopy(before["items"]["data"])
        hidden = self.store.hidden_of(sub["id"])
        hidden.update(pending_items=wanted, pending_held=held, pending_invoice=invoice["id"])
        held_cancel = as_bool(held, "cancel_at_period_end")
        # The trial end or the period end, whichever comes first, but at most 23 hours away
        # (pending-updates-reference, "Expiration").
        now = self.store.now()
        ends = [sub["current_period_end"], sub["trial_end"], now + 23 * 3600]
        sub["pending_update"] = {
            "billing_cycle_anchor": None,
            "cancel_at_period_end": held_cancel,
            "metadata": as_metadata(held),
            "expires_at": min(end for end in ends if end is not None and end > now),
            "subscription_items": [
                {"id": item["id"], "price": item["price"], "quantity": item["quantity"]}
                for item in wanted
            ],
            "trial_end": None,
            "trial_from_plan": None,
        }
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        self.store.emit("invoice.payment_failed", invoice)
        return sub

    def _apply_held(self, sub: Obj, held: Params) -> None:
        """A pending update's held parameters, applied once its invoice is paid (or at once when
        the update needed no payment)."""
        if not held:
            return
        self._apply_cancel_params(sub, held)
        sub["metadata"] = merge_metadata(sub["metadata"], as_metadata(held))

    def expire_pending_update(self, subscription_id: str) -> list[Obj]:
        """The pending update's 23 hours ran out unpaid: its items, metadata and
        cancel_at_period_end are dropped (docs.stripe.com/billing/subscriptions/pending-updates:
        "Expiration"), with `customer.subscription.pending_update_expired`."""
        sub = self.store.get("subscription", subscription_id)
        if not sub["pending_update"]:
            raise invalid(f"Subscription {subscription_id} has no pending update.")
        mark = len(self.store.events)
        self._drop_pending_update(sub)
        self.store.emit("customer.subscription.pending_update_expired", sub)
        return self.store.events[mark:]
