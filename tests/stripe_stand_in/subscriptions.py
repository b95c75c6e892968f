"""Subscriptions, subscription items and invoices, plus the billing-cycle simulations."""

from __future__ import annotations

import copy
from typing import Any

from . import objects
from .catalog import Catalog
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
from .ids import add_interval, new_id
from .invoice_items import InvoiceItems
from .listing import LIST_PARAMS, in_range, paginate
from .meters import Meters, metered_line
from .pending import check_pending_update, held_params
from .store import Obj, Store, changed_attributes
from .usage_billing import UsageBilling

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
SUB_LIST = {
    *LIST_PARAMS, "automatic_tax", "collection_method", "created", "current_period_end",
    "current_period_start", "customer", "customer_account", "plan", "price", "status",
    "test_clock",
}  # fmt: skip
SUB_CANCEL = {"cancellation_details", "invoice_now", "prorate"}
SUB_STATUSES = (
    "active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due",
    "paused", "trialing", "unpaid",
)  # fmt: skip
SUB_ITEM_LIST = {*LIST_PARAMS, "subscription"}
INVOICE_LIST = {
    *LIST_PARAMS, "collection_method", "created", "customer", "customer_account", "due_date",
    "status", "subscription",
}  # fmt: skip
PRORATIONS = ("always_invoice", "create_prorations", "none")
_CANCELED_MAY_UPDATE = {"metadata", "cancellation_details", "expand"}
_LIVE = ("active", "past_due", "trialing", "unpaid", "incomplete", "paused")


class Subscriptions:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog
        self.usage = UsageBilling(store, Meters(store))
        self.invoice_items = InvoiceItems(store)

    # -- creation ----------------------------------------------------------------------

    def start(
        self,
        customer: Obj,
        lines: list[tuple[Obj, int]],
        *,
        metadata: dict[str, str] | None = None,
        trial_end: int | None = None,
        description: str | None = None,
        coupon: Obj | None = None,
        promo: Obj | None = None,
        session_id: str | None = None,
    ) -> tuple[Obj, Obj]:
        """A new subscription and its first (paid) invoice, stored; no events yet."""
        now = self.store.now()
        interval, count = _interval_of(lines[0][0])
        trialing = trial_end is not None and trial_end > now
        anchor = trial_end if trialing else now
        end = anchor if trialing else add_interval(anchor, interval, count)
        sub_id = new_id("sub")
        period = {"start": now, "end": end}
        items = [self._new_item(sub_id, price, qty, period) for price, qty in lines]
        fields = {
            "billing_cycle_anchor": anchor,
            "currency": lines[0][0]["currency"],
            "current_period_start": now,
            "current_period_end": end,
            "customer": customer["id"],
            "description": description,
            "items": items,
            "metadata": metadata or {},
            "status": "trialing" if trialing else "active",
            "trial_end": trial_end if trialing else None,
            "trial_start": now if trialing else None,
        }
        sub = self.store.insert(objects.subscription(sub_id, now, fields))
        self.store.hidden_of(sub_id).update(
            anchor=anchor, periods=0 if trialing else 1, interval=interval, count=count
        )
        if coupon is not None:
            self._attach_discount(sub, coupon, promo, session_id)
        invoice = self._invoice(sub, "subscription_create", now, now, paid=True)
        sub["latest_invoice"] = invoice["id"]
        return sub, invoice

    def _new_item(self, sub_id: str, price: Obj, quantity: int, period: Obj) -> Obj:
        item = objects.subscription_item(
            new_id("si", 14), self.store.now(), sub_id, price, quantity, period
        )
        self.store.item_owner[item["id"]] = sub_id
        self.usage.start_counting(item, self.store.now())
        return item

    def _attach_discount(
        self, sub: Obj, coupon: Obj, promo: Obj | None, session_id: str | None
    ) -> None:
        now = self.store.now()
        end = None
        if coupon["duration"] == "repeating":
            end = add_interval(now, "month", coupon["duration_in_months"])
        discount = objects.discount(
            new_id("di"),
            now,
            coupon,
            customer=sub["customer"],
            promotion_code=promo["id"] if promo else None,
            subscription=sub["id"],
            checkout_session=session_id,
            end=end,
        )
        self.store.insert(discount)
        sub["discounts"] = [*sub["discounts"], discount["id"]]
        self.catalog.redeem(self.store.table("coupon")[coupon["id"]], promo)

    def emit_started(self, sub: Obj, invoice: Obj) -> None:
        self.store.emit("customer.subscription.created", sub)
        self._emit_paid(invoice)

    def create_directly(
        self,
        customer_id: str,
        price_id: str,
        metadata: dict[str, str] | None = None,
        trial_end: int | None = None,
    ) -> Obj:
        customer = self.store.referenced("customer", customer_id, "customer")
        price = self._recurring_price(price_id, "items[0][price]")
        sub, invoice = self.start(customer, [(price, 1)], metadata=metadata, trial_end=trial_end)
        self.emit_started(sub, invoice)
        return sub

    def create_subscription(self, params: Params) -> Obj:
        check_known(params, SUB_CREATE)
        customer_id = as_str(params, "customer", required=True) or ""
        customer = self.store.referenced("customer", customer_id, "customer")
        lines = self._create_lines(as_list(params, "items"))
        coupon, promo = self._discount_param(params, customer_id)
        sub, invoice = self.start(
            customer,
            lines,
            metadata=as_metadata(params),
            trial_end=self._trial_end_param(params),
            description=as_str(params, "description"),
            coupon=coupon,
            promo=promo,
        )
        mode = as_dict(params, "billing_mode")
        if mode is not None:
            chosen = as_choice(mode, "type", ("classic", "flexible"), param="billing_mode[type]")
            sub["billing_mode"] = objects.billing_mode(chosen or "flexible", sub["created"])
        self._apply_cancel_params(sub, params)
        self.emit_started(sub, invoice)
        return sub

    def _create_lines(self, entries: list[Any]) -> list[tuple[Obj, int]]:
        if not entries:
            raise missing_param("items")
        lines = []
        for index, entry in enumerate(entries):
            entry = _entry(entry, f"items[{index}]")
            price_id = as_str(entry, "price", required=True, param=f"items[{index}][price]")
            price = self._recurring_price(price_id or "", f"items[{index}][price]")
            if metered_line(price, entry, f"items[{index}]"):
                lines.append((price, 0))
                continue
            qty = as_int(entry, "quantity", minimum=1, param=f"items[{index}][quantity]")
            lines.append((price, qty or 1))
        return lines

    def _trial_end_param(self, params: Params) -> int | None:
        days = as_int(params, "trial_period_days", minimum=0)
        trial_end = params.get("trial_end")
        if days is not None and trial_end not in (None, ""):
            raise only_one_of("trial_end", "trial_period_days")
        if days:
            return self.store.now() + days * 86400
        if trial_end == "now" or trial_end in (None, ""):
            return None
        return as_int(params, "trial_end")

    def _discount_param(self, params: Params, customer_id: str) -> tuple[Obj | None, Obj | None]:
        entries = as_list(params, "discounts")
        if not entries:
            return None, None
        if len(entries) > 1:
            raise invalid("The stand-in supports one discount per subscription.", "discounts")
        return self.discount_entry(_entry(entries[0], "discounts[0]"), customer_id, "discounts[0]")

    def discount_entry(
        self, entry: Params, customer_id: str | None, label: str
    ) -> tuple[Obj, Obj | None]:
        """`{coupon}` or `{promotion_code}` -> (coupon, promotion code or None), validated."""
        coupon_id = as_str(entry, "coupon", param=f"{label}[coupon]")
        promo_id = as_str(entry, "promotion_code", param=f"{label}[promotion_code]")
        if coupon_id and promo_id:
            raise only_one_of(f"{label}[coupon]", f"{label}[promotion_code]")
        if promo_id:
            promo = self.catalog.usable_promotion_code(
                promo_id, customer_id, f"{label}[promotion_code]"
            )
            coupon = self.store.table("coupon")[promo["promotion"]["coupon"]]
            return coupon, promo
        if coupon_id:
            return self.catalog.usable_coupon(coupon_id, f"{label}[coupon]"), None
        raise missing_param(f"{label}[coupon]")

    def _recurring_price(self, price_id: str, param: str) -> Obj:
        price = self.store.referenced("price", price_id, param)
        if not price["active"]:
            raise invalid(
                "The price specified is inactive. This field only accepts active prices.", param
            )
        if price["type"] != "recurring":
            raise invalid(
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                param,
            )
        return price

    # -- API: retrieve / list / update / cancel -----------------------------------------

    def retrieve_subscription(self, params: Params, subscription: str) -> Obj:
        return self.store.get("subscription", subscription)

    def list_subscriptions(self, params: Params) -> Obj:
        check_known(params, SUB_LIST)
        customer = as_str(params, "customer")
        price = as_str(params, "price") or as_str(params, "plan")
        status = as_choice(params, "status", SUB_STATUSES)
        items = [
            s
            for s in self.store.newest_first("subscription")
            if (customer is None or s["customer"] == customer)
            and (price is None or any(i["price"]["id"] == price for i in s["items"]["data"]))
            and _status_matches(s["status"], status)
            and in_range(s["created"], params.get("created"), "created")
            and in_range(
                s["current_period_end"], params.get("current_period_end"), "current_period_end"
            )
            and in_range(
                s["current_period_start"],
                params.get("current_period_start"),
                "current_period_start",
            )
        ]
        return paginate(items, params, "/v1/subscriptions", "subscription")

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
        old_amount, old_interval = _recurring_amount(sub), _interval_of_sub(sub)
        self._apply_item_updates(sub, as_list(params, "items"))
        self._apply_cancel_params(sub, params)
        self._apply_details(sub, params)
        if "discounts" in params:
            self._replace_discounts(sub, params)
        sub["metadata"] = merge_metadata(sub["metadata"], as_metadata(params))
        invoices = self._apply_trial_end(sub, params)
        if _interval_of_sub(sub) != old_interval and sub["status"] != "trialing":
            invoices.append(self._restart_cycle(sub, old_amount, proration))
        elif proration == "always_invoice" and _recurring_amount(sub) != old_amount:
            if self._payment_fails(sub, params, old_amount):
                return self._pend_update(sub, before, old_amount, held)
            invoices.append(self._proration_invoice(sub, old_amount))
        elif proration == "create_prorations" and _recurring_amount(sub) != old_amount:
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
            _set_totals(invoice, 0)
            sub["latest_invoice"] = invoice["id"]
            invoices.append(invoice)
        self.usage.add_lines(invoices[-1], lines)

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
            behavior == "pending_if_incomplete" and declines and _recurring_amount(sub) > old_amount
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

    def _replace_discounts(self, sub: Obj, params: Params) -> None:
        """`discounts` replaces the subscription's discounts with the list given (`""` clears):
        `{discount}` keeps one it has ("ID of an existing discount on the object ... to
        reuse"), `{coupon}` / `{promotion_code}` adds one (docs.stripe.com/api/subscriptions/
        update#update_subscription-discounts)."""
        blank = params.get("discounts") in ("", None)
        kept, added = [], []
        for index, raw in enumerate([] if blank else as_list(params, "discounts")):
            entry, label = _entry(raw, f"discounts[{index}]"), f"discounts[{index}]"
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
            entry = _entry(raw, label)
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

    # -- subscription items ------------------------------------------------------------

    def list_subscription_items(self, params: Params) -> Obj:
        check_known(params, SUB_ITEM_LIST)
        sub_id = as_str(params, "subscription", required=True) or ""
        sub = self.store.referenced("subscription", sub_id, "subscription")
        items = list(reversed(self.store.snapshot(sub)["items"]["data"]))
        return paginate(items, params, "/v1/subscription_items", "subscription item")

    def retrieve_subscription_item(self, params: Params, item: str) -> Obj:
        found = self.store.find_any(item) if item in self.store.item_owner else None
        if found is None:
            raise no_such("subscription item", item)
        return found

    # -- invoices ----------------------------------------------------------------------

    def retrieve_invoice(self, params: Params, invoice: str) -> Obj:
        return self.store.get("invoice", invoice)

    def list_invoices(self, params: Params) -> Obj:
        check_known(params, INVOICE_LIST)
        customer = as_str(params, "customer")
        subscription = as_str(params, "subscription")
        status = as_choice(params, "status", ("draft", "open", "paid", "uncollectible", "void"))
        items = [
            i
            for i in self.store.newest_first("invoice")
            if (customer is None or i["customer"] == customer)
            and (subscription is None or i["subscription"] == subscription)
            and (status is None or i["status"] == status)
            and in_range(i["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/invoices", "invoice")

    def finalize_invoice(self, params: Params, invoice: str) -> Obj:
        """A draft becomes `open` (payable); `auto_advance=false` leaves its collection to us.
        Only a draft can be finalized (docs.stripe.com/api/invoices/finalize)."""
        check_known(params, {"auto_advance"})
        found = self.store.get("invoice", invoice)
        if found["status"] != "draft":
            raise invalid(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_already_finalized",
            )
        auto_advance = as_bool(params, "auto_advance")
        found.update(status="open", auto_advance=bool(auto_advance))
        found["status_transitions"]["finalized_at"] = self.store.now()
        self.store.emit("invoice.finalized", found)
        return found

    def void_invoice(self, params: Params, invoice: str) -> Obj:
        """An open or uncollectible invoice becomes `void`: never collected, nothing owed. A
        draft must be finalized first, and a subscription's draft cannot be deleted
        (docs.stripe.com/api/invoices/void, docs.stripe.com/api/invoices/delete)."""
        check_known(params, set())
        found = self.store.get("invoice", invoice)
        if found["status"] not in ("open", "uncollectible"):
            raise invalid(
                "You can only pass in open or uncollectible invoices.", code="invoice_not_open"
            )
        found.update(status="void", amount_remaining=0, next_payment_attempt=None)
        found["status_transitions"]["voided_at"] = self.store.now()
        self.store.emit("invoice.voided", found)
        return found

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

    def list_invoice_lines(self, params: Params, invoice: str) -> Obj:
        check_known(params, LIST_PARAMS)
        found = self.store.get("invoice", invoice)
        lines = list(found["lines"]["data"])
        return paginate(lines, params, f"/v1/invoices/{invoice}/lines", "line item")

    def _invoice(
        self,
        sub: Obj,
        reason: str,
        period_start: int,
        period_end: int,
        *,
        paid: bool,
        with_discounts: bool = True,
    ) -> Obj:
        invoice_id = new_id("in")
        lines = [self._invoice_line(invoice_id, sub, item) for item in sub["items"]["data"]]
        subtotal = sum(line["amount"] for line in lines)
        discounts = self._discounts_due(sub, period_start) if with_discounts else []
        discount_amounts = [
            {"amount": discount_amount(d["coupon"], subtotal), "discount": d["id"]}
            for d in discounts
        ]
        total = max(0, subtotal - sum(d["amount"] for d in discount_amounts))
        customer = self.store.get("customer", sub["customer"], allow_deleted=True)
        fields = {
            "billing_reason": reason,
            "currency": sub["currency"],
            "customer": sub["customer"],
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "discounts": [d["id"] for d in discounts],
            "lines": lines,
            "number": self._invoice_number(customer),
            "period_end": period_end,
            "period_start": period_start,
            "status": "paid" if paid else "open",
            "subscription": sub["id"],
            "subscription_metadata": sub["metadata"],
            "subtotal": subtotal,
            "total": total,
            "total_discount_amounts": discount_amounts,
        }
        invoice = self.store.insert(objects.invoice(invoice_id, self.store.now(), fields))
        self._retire_used_discounts(sub, discounts)
        return invoice

    def _invoice_line(self, invoice_id: str, sub: Obj, item: Obj) -> Obj:
        price = self.store.table("price").get(item["price"]["id"], item["price"])
        product = self.store.table("product").get(price["product"]) or {}
        name = product.get("name") or price["product"]
        trial = sub["status"] == "trialing"
        amount = 0 if trial else (price["unit_amount"] or 0) * item["quantity"]
        fields = {
            "amount": amount,
            "description": _line_description(name, price, item["quantity"], trial),
            "metadata": sub["metadata"],
            "period_end": sub["current_period_end"],
            "period_start": sub["current_period_start"],
            "price": price,
            "quantity": item["quantity"],
            "subscription": sub["id"],
            "subscription_item": item["id"],
            "subtotal": amount,
        }
        return objects.invoice_line(new_id("il"), invoice_id, fields)

    def _invoice_number(self, customer: Obj) -> str:
        sequence = customer.get("next_invoice_sequence", 1)
        customer["next_invoice_sequence"] = sequence + 1
        return f"{customer.get('invoice_prefix', 'STANDIN')}-{sequence:04d}"

    def _discounts_due(self, sub: Obj, period_start: int) -> list[Obj]:
        found = []
        for discount_id in sub["discounts"]:
            discount = self.store.snapshot(self.store.table("discount")[discount_id])
            if discount["end"] is None or period_start < discount["end"]:
                found.append(discount)
        return found

    def _retire_used_discounts(self, sub: Obj, applied: list[Obj]) -> None:
        now = self.store.now()
        keep = []
        for discount_id in sub["discounts"]:
            discount = self.store.table("discount")[discount_id]
            once = discount["coupon"]["duration"] == "once"
            used = once and any(d["id"] == discount_id for d in applied)
            expired = discount["end"] is not None and discount["end"] <= now
            if not (used or expired):
                keep.append(discount_id)
        sub["discounts"] = keep

    def _restart_cycle(self, sub: Obj, old_amount: int, proration: str) -> Obj:
        """A change of billing interval (monthly -> yearly) restarts the cycle now and bills
        at once, crediting the unused part of the old period unless prorations are off."""
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        unused = 0
        if proration != "none":
            unused = round(old_amount * max(0.0, (end - now) / max(1, end - start)))
        interval, count = _interval_of_sub(sub)
        self.store.hidden_of(sub["id"]).update(
            anchor=now, periods=1, interval=interval, count=count
        )
        sub["billing_cycle_anchor"] = now
        self._set_period(sub, now, add_interval(now, interval, count))
        invoice = self._invoice(sub, "subscription_update", now, now, paid=True)
        _set_totals(invoice, max(0, invoice["total"] - unused), clear_discounts=False)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _proration_invoice(self, sub: Obj, old_amount: int, *, paid: bool = True) -> Obj:
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        remaining = max(0.0, (end - now) / max(1, end - start))
        invoice = self._invoice(
            sub, "subscription_update", now, now, paid=paid, with_discounts=False
        )
        amount = max(0, round((_recurring_amount(sub) - old_amount) * remaining))
        for line in invoice["lines"]["data"]:
            line["parent"]["subscription_item_details"]["proration"] = True
            line["period"] = {"start": now, "end": end}
            line.update(amount=0, subtotal=0)
        if invoice["lines"]["data"]:
            first = invoice["lines"]["data"][0]
            first.update(amount=amount, subtotal=amount)
            first["description"] = f"Remaining time on {first['description']}"
        _set_totals(invoice, amount)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _pend_proration(self, sub: Obj, old_amount: int) -> None:
        """`create_prorations`: the difference for the rest of the period waits for the next
        invoice (a credit when negative); nothing is charged now."""
        if sub["status"] == "trialing":
            return
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        remaining = max(0.0, (end - now) / max(1, end - start))
        hidden = self.store.hidden_of(sub["id"])
        difference = round((_recurring_amount(sub) - old_amount) * remaining)
        hidden["pending_proration"] = hidden.get("pending_proration", 0) + difference

    def _settle(self, sub: Obj, *, invoice_now: bool, prorate: bool) -> Obj | None:
        """What cancelling now bills: with `invoice_now` a final invoice of the pending
        prorations, less (with `prorate`) the unused time, a credit going to the customer's
        balance. Without `invoice_now` the pending prorations are dropped, as Stripe does."""
        hidden = self.store.hidden_of(sub["id"])
        pending = hidden.pop("pending_proration", 0)
        if not invoice_now or sub["status"] == "trialing":
            return None
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        unused = 0
        if prorate:
            unused = round(_recurring_amount(sub) * max(0.0, (end - now) / max(1, end - start)))
        amount = pending - unused
        invoice = self._invoice(
            sub, "subscription_update", now, now, paid=True, with_discounts=False
        )
        for line in invoice["lines"]["data"]:
            line["parent"]["subscription_item_details"]["proration"] = True
            line["period"] = {"start": now, "end": end}
            line.update(amount=0, subtotal=0)
        if invoice["lines"]["data"]:
            invoice["lines"]["data"][0].update(amount=amount, subtotal=amount)
        _set_totals(invoice, max(0, amount))
        if amount < 0:
            customer = self.store.get("customer", sub["customer"], allow_deleted=True)
            customer["balance"] = customer.get("balance", 0) + amount
        # "invoice_now: … a final invoice that invoices for any un-invoiced metered usage and
        # new/pending proration invoice items" (docs.stripe.com/api/subscriptions/cancel).
        self.usage.add_lines(invoice, self.usage.period_lines(sub, start, now + 1))
        if invoice["amount_due"] > 0 and self.store.hidden_of(sub["customer"]).get("declines"):
            # Charged like any invoice: a declined card leaves it open.
            invoice.update(status="open", amount_paid=0, attempted=True, attempt_count=1)
            invoice.update(amount_remaining=invoice["amount_due"])
            invoice["status_transitions"]["paid_at"] = None
        sub["latest_invoice"] = invoice["id"]
        return invoice

    # -- simulations -------------------------------------------------------------------

    def renew_awaiting_payment(self, subscription_id: str) -> list[Obj]:
        """Stripe's renewal before the charge: the period moves forward and the new invoice
        waits (about an hour) to be charged; the status is still `active`."""
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in _LIVE:
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        invoice = self._renew(sub, paid=False)
        invoice.update(status="draft", attempted=False, attempt_count=0)
        self.store.emit("invoice.created", invoice)
        self.store.emit(
            "customer.subscription.updated",
            sub,
            changed_attributes(before, self.store.snapshot(sub)),
        )
        return self.store.events[mark:]

    def exhaust_retries(self, subscription_id: str, outcome: str = "unpaid") -> list[Obj]:
        """Smart Retries gave up on the open invoice: the subscription becomes `unpaid` or is
        `canceled`, as the account's retry settings say; the invoice stays unpaid."""
        if outcome not in ("unpaid", "canceled"):
            raise invalid("outcome must be unpaid or canceled", "outcome")
        sub = self.store.get("subscription", subscription_id)
        invoice = self.store.table("invoice").get(sub["latest_invoice"] or "")
        if sub["status"] != "past_due" or invoice is None or invoice["status"] != "open":
            raise invalid(f"Subscription {subscription_id} has no failing renewal.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        invoice["next_payment_attempt"] = None
        now = self.store.now()
        if outcome == "canceled":
            sub.update(status="canceled", canceled_at=now, ended_at=now)
            sub["cancellation_details"]["reason"] = "payment_failed"
            self.store.emit("customer.subscription.deleted", sub)
        else:
            sub["status"] = "unpaid"
            self.store.emit(
                "customer.subscription.updated",
                sub,
                changed_attributes(before, self.store.snapshot(sub)),
            )
        return self.store.events[mark:]

    def advance_period(self, subscription_id: str) -> list[Obj]:
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] == "canceled":
            raise invalid(f"Subscription {subscription_id} is canceled.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        if self._ends_now(sub):
            self._expire_pending_update_at_period_end(sub)
            sub.update(status="canceled", ended_at=sub["current_period_end"])
            self.store.emit("customer.subscription.deleted", sub)
            return self.store.events[mark:]
        invoice = self._renew(sub, paid=True)
        self.store.emit(
            "customer.subscription.updated",
            sub,
            changed_attributes(before, self.store.snapshot(sub)),
        )
        self._emit_paid(invoice)
        return self.store.events[mark:]

    def fail_payment(self, subscription_id: str) -> list[Obj]:
        """The renewal charge fails: a new period with an open invoice, status `past_due`.

        Called again while that invoice is still open, it fails another attempt on it.
        """
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in _LIVE:
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        latest = self._unpaid_renewal(sub)
        if latest is not None:
            invoice = latest
            invoice.update(status="open", attempted=True)
            invoice["attempt_count"] += 1
        else:
            invoice = self._renew(sub, paid=False)
            invoice.update(attempted=True, attempt_count=1)
        sub["status"] = "past_due"
        self.store.emit("invoice.payment_failed", invoice)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        return self.store.events[mark:]

    def _unpaid_renewal(self, sub: Obj) -> Obj | None:
        """The renewal invoice still waiting for its charge (draft or open). Not necessarily the
        latest: an upgrade invoiced after the renewal was drafted is the latest then."""
        for invoice in self.store.newest_first("invoice"):
            if (
                invoice["subscription"] == sub["id"]
                and invoice["billing_reason"] == "subscription_cycle"
                and invoice["status"] in ("open", "draft")
            ):
                return invoice
        return None

    def pay_invoice(self, subscription_id: str) -> list[Obj]:
        """The open latest invoice (else the open renewal) gets paid (a retry succeeded):
        status back to `active`."""
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in _LIVE:
            # An ended subscription's invoices were voided or left unpaid; none reopens it.
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        invoice = self.store.table("invoice").get(sub["latest_invoice"] or "")
        if invoice is None or invoice["status"] != "open":
            invoice = self._unpaid_renewal(sub)
        if invoice is None or invoice["status"] != "open":
            # A void invoice (an expired pending update's) can never be paid.
            raise invalid(f"Subscription {subscription_id} has no open invoice.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        now = self.store.now()
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
        invoice.update(next_payment_attempt=None)
        invoice["status_transitions"]["paid_at"] = now
        sub["status"] = "active"
        hidden = self.store.hidden_of(sub["id"])
        pending = None
        if invoice["id"] == hidden.get("pending_invoice"):  # the pending update's invoice
            hidden.pop("pending_invoice")
            pending = hidden.pop("pending_items", None)
        if pending is not None:  # a pending update is applied once its invoice is paid
            sub["items"]["data"] = pending
            sub["pending_update"] = None
            self._apply_held(sub, hidden.pop("pending_held", {}))
        self._emit_paid(invoice)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        return self.store.events[mark:]

    def _ends_now(self, sub: Obj) -> bool:
        cancel_at = sub["cancel_at"]
        return sub["cancel_at_period_end"] or (
            cancel_at is not None and cancel_at <= sub["current_period_end"]
        )

    def _renew(self, sub: Obj, *, paid: bool) -> Obj:
        """Move to the next period and bill it; `paid=False` leaves the invoice open."""
        hidden = self.store.hidden_of(sub["id"])
        self._expire_pending_update_at_period_end(sub)
        old_start, old_end = sub["current_period_start"], sub["current_period_end"]
        hidden["periods"] += 1
        steps = hidden["count"] * hidden["periods"]
        self._set_period(sub, old_end, add_interval(hidden["anchor"], hidden["interval"], steps))
        if sub["status"] in ("trialing", "past_due", "unpaid", "incomplete"):
            sub["status"] = "active"
        invoice = self._invoice(sub, "subscription_cycle", old_start, old_end, paid=paid)
        pending = hidden.pop("pending_proration", 0)
        if pending:
            _set_totals(invoice, max(0, invoice["total"] + pending), clear_discounts=False)
        # In arrears: the closed period's metered usage, read now (the invoice is final).
        self.usage.add_lines(invoice, self.usage.period_lines(sub, old_start, old_end))
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _set_period(self, sub: Obj, start: int, end: int) -> None:
        sub.update(current_period_start=start, current_period_end=end)
        for item in sub["items"]["data"]:
            item.update(current_period_start=start, current_period_end=end)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = end

    def _emit_paid(self, invoice: Obj) -> None:
        self.store.emit("invoice.paid", invoice)
        self.store.emit("invoice.payment_succeeded", invoice)


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


def _entry(raw: Any, label: str) -> Params:
    if not isinstance(raw, dict):
        raise invalid(f"Invalid hash: {label}", label)
    return raw


def _find_item(sub: Obj, item_id: str, param: str) -> Obj:
    for item in sub["items"]["data"]:
        if item["id"] == item_id:
            return item
    raise no_such("subscription item", item_id, param=param, status=400)


def _interval_of(price: Obj) -> tuple[str, int]:
    recurring = price["recurring"] or {}
    return recurring.get("interval", "month"), recurring.get("interval_count", 1)


def _interval_of_sub(sub: Obj) -> tuple[str, int]:
    return _interval_of(sub["items"]["data"][0]["price"])


def _recurring_amount(sub: Obj) -> int:
    return sum((i["price"]["unit_amount"] or 0) * i["quantity"] for i in sub["items"]["data"])


def _status_matches(status: str, wanted: str | None) -> bool:
    if wanted is None:
        return status not in ("canceled", "incomplete_expired")
    if wanted == "all":
        return True
    if wanted == "ended":
        return status in ("canceled", "incomplete_expired")
    return status == wanted


def discount_amount(coupon: Obj, subtotal: int) -> int:
    """What a coupon takes off `subtotal` (percent rounded half-up to whole cents)."""
    if coupon.get("percent_off") is not None:
        return min(subtotal, int(subtotal * coupon["percent_off"] / 100 + 0.5))
    return min(subtotal, coupon.get("amount_off") or 0)


def _set_totals(invoice: Obj, amount: int, *, clear_discounts: bool = True) -> None:
    paid = invoice["status"] == "paid"
    if clear_discounts:
        invoice.update(subtotal=amount, subtotal_excluding_tax=amount)
        invoice.update(discounts=[], total_discount_amounts=[])
    invoice.update(total=amount, total_excluding_tax=amount, amount_due=amount)
    invoice.update(amount_paid=amount if paid else 0, amount_remaining=0 if paid else amount)


def _line_description(name: str, price: Obj, quantity: int, trial: bool) -> str:
    if trial:
        return f"Trial period for {name}"
    amount = (price["unit_amount"] or 0) / 100
    currency = price["currency"]
    shown = f"${amount:,.2f}" if currency == "usd" else f"{amount:,.2f} {currency.upper()}"
    interval = (price["recurring"] or {}).get("interval", "month")
    return f"{quantity} × {name} (at {shown} / {interval})"
