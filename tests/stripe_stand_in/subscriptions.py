"""Subscriptions, subscription items and invoices, plus the billing-cycle simulations.

The class is put together from parts by topic: updates and cancellation (`sub_updates`),
pending updates (`sub_pending`), invoices (`sub_invoices`) and renewals (`sub_renewals`).
"""

from __future__ import annotations

from typing import Any

from . import objects
from .catalog import Catalog
from .errors import invalid, missing_param, no_such, only_one_of
from .forms import (
    Params,
    as_choice,
    as_dict,
    as_int,
    as_list,
    as_metadata,
    as_str,
    check_known,
)
from .ids import add_interval, new_id
from .invoice_items import InvoiceItems
from .listing import LIST_PARAMS, in_range, paginate
from .meters import Meters, metered_line
from .store import Obj, Store
from .sub_invoices import SubscriptionInvoices
from .sub_pending import PendingUpdates
from .sub_renewals import Renewals
from .sub_shared import (
    as_entry,
    discount_amount,
    interval_of,
)
from .sub_updates import SUB_CREATE, SubscriptionUpdates
from .usage_billing import UsageBilling

SUB_LIST = {
    *LIST_PARAMS, "automatic_tax", "collection_method", "created", "current_period_end",
    "current_period_start", "customer", "customer_account", "plan", "price", "status",
    "test_clock",
}  # fmt: skip
SUB_STATUSES = (
    "active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due",
    "paused", "trialing", "unpaid",
)  # fmt: skip
SUB_ITEM_LIST = {*LIST_PARAMS, "subscription"}


class Subscriptions(SubscriptionUpdates, PendingUpdates, SubscriptionInvoices, Renewals):
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog
        self.usage = UsageBilling(store, Meters(store))
        self.invoice_items = InvoiceItems(store)

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
        interval, count = interval_of(lines[0][0])
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
            entry = as_entry(entry, f"items[{index}]")
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
        return self.discount_entry(
            as_entry(entries[0], "discounts[0]"), customer_id, "discounts[0]"
        )

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


def _status_matches(status: str, wanted: str | None) -> bool:
    if wanted is None:
        return status not in ("canceled", "incomplete_expired")
    if wanted == "all":
        return True
    if wanted == "ended":
        return status in ("canceled", "incomplete_expired")
    return status == wanted


__all__ = ["Subscriptions", "discount_amount"]
