"""Updating and cancelling a subscription (`POST` and `DELETE /v1/subscriptions/{id}`)."""

from __future__ import annotations

import copy
from typing import Any

from . import objects
from .errors import invalid, missing_param, no_such, only_one_of
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_dict,
    as_int,
    as_list,
    as_metadata,
    as_str,
    check_known,
    merge_metadata,
)
from .meters import metered_line
from .pending import check_pending_update, held_params
from .store import Obj, changed_attributes
from .sub_shared import (
    SubscriptionParts,
    as_entry,
    interval_of_sub,
    recurring_amount,
    set_totals,
)

SUB_CREATE = {
    "add_invoice_items", "application_fee_percent", "automatic_tax", "backdate_start_date",
    "billing_cycle_anchor", "billing_cycle_anchor_config", "billing_mode", "billing_schedules",
    "billing_thresholds", "cancel_at", "cancel_at_period_end", "collection_method", "currency",
    "customer", "customer_account", "days_until_due", "default_payment_method",
    "default_source", "default_tax_rates", "description", "discounts", "invoice_settings",
    "items", "metadata", "off_session", "on_behalf_of", "payment_behavior", "payment_settings",
    "pending_invoice_item_interval", "proration_behavior", "transfer_data", "trial_end",
    "trial_from_plan", "trial_period_days", "trial_settings",
}  # fmt: skip
SUB_UPDATE = (
    SUB_CREATE
    - {"backdate_start_date", "billing_cycle_anchor_config", "billing_mode", "currency",
       "customer", "customer_account", "trial_period_days"}
) | {"cancellation_details", "pause_collection", "proration_date"}  # fmt: skip
SUB_CANCEL = {"cancellation_details", "invoice_now", "prorate"}
PRORATIONS = ("always_invoice", "create_prorations", "none")
_CANCELED_MAY_UPDATE = {"metadata", "cancellation_details", "expand"}


class SubscriptionUpdates(SubscriptionParts):
    def update_subscription(self, params: Params, subscription: str) -> Obj:
        check_known(params, SUB_UPDATE)
        sub = self.store.get("subscription", subscription)
        if sub["status"] == "canceled" and set(params) - _CANCELED_MAY_UPDATE:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        check_pending_update(params)
        # A pending update's metadata and cancel_at_period_end wait for its invoice (pending.py).
        held = held_params(params)
        params = {name: value for name, value in params.items() if name not in held}
        before = self.store.snapshot(sub)
        expired = self._expire_on_conflict(sub, params)
        proration = as_choice(params, "proration_behavior", PRORATIONS) or "create_prorations"
        old_amount, old_interval = recurring_amount(sub), interval_of_sub(sub)
        self._apply_item_updates(sub, as_list(params, "items"))
        self._apply_cancel_params(sub, params)
        self._apply_details(sub, params)
        if "discounts" in params:
            self._replace_discounts(sub, params)
        sub["metadata"] = merge_metadata(sub["metadata"], as_metadata(params))
        invoices = self._apply_trial_end(sub, params)
        if interval_of_sub(sub) != old_interval and sub["status"] != "trialing":
            invoices.append(self._restart_cycle(sub, old_amount, proration))
        elif proration == "always_invoice" and recurring_amount(sub) != old_amount:
            if self._payment_fails(sub, params, old_amount):
                return self._pend_update(sub, before, old_amount, held)
            invoices.append(self._proration_invoice(sub, old_amount))
        elif proration == "create_prorations" and recurring_amount(sub) != old_amount:
            self._pend_proration(sub, old_amount)
        self._bill_usage_of_prices_left(sub, before, proration, invoices)
        self._apply_held(sub, held)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if expired:
            self.store.emit("customer.subscription.pending_update_expired", sub)
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        for invoice in invoices:
            self._emit_paid(invoice)
        return sub

    def _bill_usage_of_prices_left(
        self, sub: Obj, before: Obj, proration: str, invoices: list[Obj]
    ) -> None:
        """Metered prices removed or swapped (`usage_billing`): their usage so far on this
        update's invoice (`always_invoice`; one of its own if the flat amount did not change)
        or kept for the next one."""
        lines = self.usage.prices_left(sub, before, proration)
        if not lines:
            return
        if proration != "always_invoice":
            self.usage.keep_for_next_invoice(sub, lines)
            return
        if not invoices:
            now = self.store.now()
            invoice = self._invoice(sub, "subscription_update", now, now, paid=True)
            invoice["lines"]["data"] = []
            set_totals(invoice, 0)
            sub["latest_invoice"] = invoice["id"]
            invoices.append(invoice)
        self.usage.add_lines(invoices[-1], lines)

    def _replace_discounts(self, sub: Obj, params: Params) -> None:
        """`discounts` replaces the subscription's discounts with the list given (`""` clears):
        `{discount}` keeps one it has ("ID of an existing discount on the object ... to
        reuse"), `{coupon}` / `{promotion_code}` adds one (docs.stripe.com/api/subscriptions/
        update#update_subscription-discounts)."""
        blank = params.get("discounts") in ("", None)
        kept, added = [], []
        for index, raw in enumerate([] if blank else as_list(params, "discounts")):
            entry, label = as_entry(raw, f"discounts[{index}]"), f"discounts[{index}]"
            reuse = as_str(entry, "discount", param=f"{label}[discount]")
            if reuse is not None and reuse not in sub["discounts"]:
                raise no_such("discount", reuse, param=f"{label}[discount]", status=400)
            if reuse is not None:
                kept.append(reuse)
            else:
                added.append(self.discount_entry(entry, sub["customer"], label))
        sub["discounts"] = kept
        for coupon, promo in added:
            self._attach_discount(sub, coupon, promo, None)

    def _apply_item_updates(self, sub: Obj, entries: list[Any]) -> None:
        for index, raw in enumerate(entries):
            label = f"items[{index}]"
            entry = as_entry(raw, label)
            item_id = as_str(entry, "id", param=f"{label}[id]")
            if item_id is None:
                self._add_item(sub, entry, label)
                continue
            item = _find_item(sub, item_id, f"{label}[id]")
            if as_bool(entry, "deleted", param=f"{label}[deleted]"):
                sub["items"]["data"].remove(item)
                self.store.item_owner.pop(item_id, None)
                continue
            self._change_item(item, entry, label)
        if not sub["items"]["data"]:
            raise invalid("A subscription must have at least one active price.", "items")

    def _add_item(self, sub: Obj, entry: Params, label: str) -> None:
        price_id = as_str(entry, "price", required=True, param=f"{label}[price]") or ""
        price = self._recurring_price(price_id, f"{label}[price]")
        quantity = (
            0
            if metered_line(price, entry, label)
            else as_int(entry, "quantity", minimum=1, param=f"{label}[quantity]") or 1
        )
        period = {"start": sub["current_period_start"], "end": sub["current_period_end"]}
        sub["items"]["data"].append(self._new_item(sub["id"], price, quantity, period))

    def _change_item(self, item: Obj, entry: Params, label: str) -> None:
        price_id = as_str(entry, "price", param=f"{label}[price]")
        if price_id is not None:
            price = self._recurring_price(price_id, f"{label}[price]")
            item["price"] = copy.deepcopy(price)
            item["plan"] = objects.plan_from_price(price)
        quantity = as_int(entry, "quantity", minimum=0, param=f"{label}[quantity]")
        if quantity is not None:
            item["quantity"] = quantity
        item["metadata"] = merge_metadata(item["metadata"], as_metadata(entry))

    def _apply_cancel_params(self, sub: Obj, params: Params) -> None:
        at_period_end = as_bool(params, "cancel_at_period_end")
        has_cancel_at = "cancel_at" in params
        if at_period_end is not None and has_cancel_at:
            raise only_one_of("cancel_at", "cancel_at_period_end")
        now = self.store.now()
        details = sub["cancellation_details"]
        if at_period_end is True:
            sub.update(cancel_at_period_end=True, cancel_at=sub["current_period_end"])
            sub["canceled_at"] = now
            details["reason"] = "cancellation_requested"
        elif at_period_end is False or (has_cancel_at and params["cancel_at"] == ""):
            sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
            details.update(reason=None, comment=None, feedback=None)
        elif has_cancel_at:
            sub["cancel_at"] = self._cancel_at_value(sub, params["cancel_at"])
            sub["canceled_at"] = now
            details["reason"] = "cancellation_requested"
        self._apply_cancellation_details(sub, params)

    def _cancel_at_value(self, sub: Obj, value: Any) -> int:
        if value in ("min_period_end", "max_period_end"):
            return sub["current_period_end"]
        when = as_int({"cancel_at": value}, "cancel_at")
        if when is None or when <= self.store.now():
            raise invalid("cancel_at must be in the future.", "cancel_at")
        return when

    def _apply_cancellation_details(self, sub: Obj, params: Params) -> None:
        details = as_dict(params, "cancellation_details")
        if details is None:
            return
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = as_str(
                    details, key, param=f"cancellation_details[{key}]"
                )

    def _apply_details(self, sub: Obj, params: Params) -> None:
        for key in ("description", "default_payment_method"):
            if key in params:
                sub[key] = as_str(params, key)
        if "collection_method" in params:
            sub["collection_method"] = as_choice(
                params, "collection_method", ("charge_automatically", "send_invoice")
            )
        if "days_until_due" in params:
            sub["days_until_due"] = as_int(params, "days_until_due", minimum=0)
        if "pause_collection" in params:
            sub["pause_collection"] = _pause_collection(params)

    def _apply_trial_end(self, sub: Obj, params: Params) -> list[Obj]:
        value = params.get("trial_end")
        if value in (None, ""):
            return []
        if value == "now":
            if sub["status"] != "trialing":
                return []
            now = self.store.now()
            sub["trial_end"] = now
            self.store.hidden_of(sub["id"]).update(anchor=now, periods=0)
            self._set_period(sub, sub["current_period_start"], now)
            return [self._renew(sub, paid=True)]
        trial_end = as_int(params, "trial_end")
        if trial_end is None or trial_end <= self.store.now():
            raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.")
        sub.update(status="trialing", trial_end=trial_end)
        sub["trial_start"] = sub["trial_start"] or self.store.now()
        self.store.hidden_of(sub["id"]).update(anchor=trial_end, periods=0)
        self._set_period(sub, sub["current_period_start"], trial_end)
        return []

    def cancel_subscription(self, params: Params, subscription: str) -> Obj:
        check_known(params, SUB_CANCEL)
        sub = self.store.get("subscription", subscription)
        if sub["status"] == "canceled":
            raise no_such("subscription", subscription)
        now = self.store.now()
        final = self._settle(
            sub,
            invoice_now=bool(as_bool(params, "invoice_now")),
            prorate=bool(as_bool(params, "prorate")),
        )
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        self._apply_cancellation_details(sub, params)
        self.store.emit("customer.subscription.deleted", sub)
        if final is not None and final["status"] == "paid":
            self._emit_paid(final)
        elif final is not None:
            self.store.emit("invoice.payment_failed", final)
        return sub


def _pause_collection(params: Params) -> Obj | None:
    """`pause_collection[behavior]=void` pauses invoice collection; `pause_collection=""`
    resumes it."""
    if params.get("pause_collection") in ("", None):
        return None
    entry = as_dict(params, "pause_collection") or {}
    behavior = as_choice(
        entry,
        "behavior",
        ("keep_as_draft", "mark_uncollectible", "void"),
        param="pause_collection[behavior]",
    )
    if behavior is None:
        raise missing_param("pause_collection[behavior]")
    resumes_at = as_int(entry, "resumes_at", param="pause_collection[resumes_at]")
    return {"behavior": behavior, "resumes_at": resumes_at}


def _find_item(sub: Obj, item_id: str, param: str) -> Obj:
    for item in sub["items"]["data"]:
        if item["id"] == item_id:
            return item
    raise no_such("subscription item", item_id, param=param, status=400)
