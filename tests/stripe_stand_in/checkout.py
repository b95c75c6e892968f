"""Checkout Sessions: create, retrieve, update, list, line items, expire, and completion."""

from __future__ import annotations

import copy
from typing import Any

from . import objects
from .catalog import Catalog
from .errors import invalid, missing_param, only_one_of
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
from .ids import checkout_session_id, new_id
from .listing import LIST_PARAMS, in_range, paginate
from .meters import metered_line
from .store import Obj, Store
from .subscriptions import Subscriptions, discount_amount

SESSION_CREATE = {
    "adaptive_pricing", "after_expiration", "allow_promotion_codes",
    "allowed_payment_method_types", "automatic_tax", "billing_address_collection",
    "branding_settings", "cancel_url", "client_reference_id", "consent_collection", "currency",
    "custom_fields", "custom_text", "customer", "customer_account", "customer_creation",
    "customer_email", "customer_update", "discounts", "excluded_payment_method_types",
    "expires_at", "integration_identifier", "invoice_creation", "line_items", "locale",
    "managed_payments", "metadata", "mode", "name_collection", "optional_items",
    "origin_context", "payment_intent_data", "payment_method_collection",
    "payment_method_configuration", "payment_method_data", "payment_method_options",
    "payment_method_types", "permissions", "phone_number_collection", "redirect_on_completion",
    "return_url", "saved_payment_method_options", "setup_intent_data",
    "shipping_address_collection", "shipping_options", "submit_type", "subscription_data",
    "success_url", "tax_id_collection", "ui_mode", "wallet_options",
}  # fmt: skip
SESSION_UPDATE = {
    "collected_information", "line_items", "metadata", "payment_intent_data",
    "shipping_options",
}  # fmt: skip
SESSION_LIST = {
    *LIST_PARAMS, "created", "customer", "customer_account", "customer_details",
    "payment_intent", "payment_link", "status", "subscription",
}  # fmt: skip
MODES = ("payment", "setup", "subscription")
UI_MODES = ("custom", "embedded", "hosted", "elements", "embedded_page", "form", "hosted_page")


class Checkout:
    def __init__(self, store: Store, catalog: Catalog, subscriptions: Subscriptions) -> None:
        self.store = store
        self.catalog = catalog
        self.subscriptions = subscriptions

    # -- API ---------------------------------------------------------------------------

    def create_session(self, params: Params) -> Obj:
        check_known(params, SESSION_CREATE)
        mode = as_choice(params, "mode", MODES)
        if mode is None:
            raise missing_param("mode")
        customer_id, email = self._session_customer(params)
        lines = self._line_items(params, mode)
        discount, coupon, promo = self._session_discount(params, customer_id)
        subscription_data = self._subscription_data(params, mode)
        subtotal = sum((price["unit_amount"] or 0) * qty for price, qty in lines)
        total = subtotal - (discount_amount(coupon, subtotal) if coupon else 0)
        now = self.store.now()
        session_id = checkout_session_id()
        fields = {
            "allow_promotion_codes": as_bool(params, "allow_promotion_codes"),
            "amount_subtotal": subtotal,
            "amount_total": total,
            "automatic_tax_enabled": as_bool(as_dict(params, "automatic_tax") or {}, "enabled"),
            "billing_address_collection": as_str(params, "billing_address_collection"),
            "cancel_url": as_str(params, "cancel_url"),
            "client_reference_id": as_str(params, "client_reference_id"),
            "currency": lines[0][0]["currency"] if lines else as_str(params, "currency"),
            "customer": customer_id,
            "customer_email": email,
            "discounts": [discount] if discount else [],
            "expires_at": as_int(params, "expires_at") or now + 86400,
            "locale": as_str(params, "locale"),
            "metadata": as_metadata(params),
            "mode": mode,
            "payment_method_collection": as_str(params, "payment_method_collection"),
            "payment_method_types": as_list(params, "payment_method_types"),
            "return_url": as_str(params, "return_url"),
            "success_url": as_str(params, "success_url"),
            "ui_mode": as_choice(params, "ui_mode", UI_MODES),
        }
        session = self.store.insert(objects.checkout_session(session_id, now, fields))
        self.store.hidden_of(session_id).update(
            line_items=[self._item(price, qty) for price, qty in lines],
            subscription_data=subscription_data,
            coupon=coupon["id"] if coupon else None,
            promotion_code=promo["id"] if promo else None,
        )
        return session

    def _session_customer(self, params: Params) -> tuple[str | None, str | None]:
        customer_id = as_str(params, "customer")
        email = as_str(params, "customer_email")
        if customer_id and email:
            raise only_one_of("customer", "customer_email")
        if customer_id:
            self.store.referenced("customer", customer_id, "customer")
        return customer_id, email

    def _line_items(self, params: Params, mode: str) -> list[tuple[Obj, int]]:
        entries = as_list(params, "line_items")
        if not entries and mode != "setup":
            raise missing_param("line_items")
        lines = [self._line(entry, f"line_items[{i}]") for i, entry in enumerate(entries)]
        recurring = [price for price, _ in lines if price["type"] == "recurring"]
        if mode == "subscription" and not recurring:
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                "line_items",
            )
        if mode == "payment" and recurring:
            raise invalid(
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                "line_items",
            )
        if len({price["currency"] for price, _ in lines}) > 1:
            raise invalid("All line items must use the same currency.", "line_items")
        return lines

    def _line(self, raw: Any, label: str) -> tuple[Obj, int]:
        if not isinstance(raw, dict):
            raise invalid(f"Invalid hash: {label}", label)
        price_id = as_str(raw, "price", param=f"{label}[price]")
        price_data = as_dict(raw, "price_data", param=f"{label}[price_data]")
        if price_id and price_data is not None:
            raise only_one_of(f"{label}[price]", f"{label}[price_data]")
        if price_data is not None:
            price = self._inline_price(price_data, f"{label}[price_data]")
        elif price_id:
            price = self.store.referenced("price", price_id, f"{label}[price]")
        else:
            raise missing_param(f"{label}[price]")
        if not price["active"]:
            raise invalid(
                "The price specified is inactive. This field only accepts active prices.",
                f"{label}[price]",
            )
        if metered_line(price, raw, label):
            return price, 0
        quantity = as_int(raw, "quantity", minimum=1, param=f"{label}[quantity]")
        if quantity is None:
            raise missing_param(f"{label}[quantity]")
        return price, quantity

    def _inline_price(self, data: Params, label: str) -> Obj:
        product_id = as_str(data, "product", param=f"{label}[product]")
        product_data = as_dict(data, "product_data", param=f"{label}[product_data]")
        if product_data is not None:
            product_id = self.catalog.create_product(product_data)["id"]
        elif product_id is None:
            raise missing_param(f"{label}[product]")
        else:
            self.store.referenced("product", product_id, f"{label}[product]")
        fields = {k: v for k, v in data.items() if k not in ("product", "product_data")}
        return self.catalog._create_price_from(fields, product_id, label)

    def _session_discount(
        self, params: Params, customer_id: str | None
    ) -> tuple[Obj | None, Obj | None, Obj | None]:
        entries = as_list(params, "discounts")
        if not entries:
            return None, None, None
        if as_bool(params, "allow_promotion_codes"):
            raise only_one_of("allow_promotion_codes", "discounts")
        if len(entries) > 1:
            raise invalid("You may only specify one discount.", "discounts")
        entry = entries[0]
        if not isinstance(entry, dict):
            raise invalid("Invalid hash: discounts[0]", "discounts[0]")
        coupon, promo = self.subscriptions.discount_entry(entry, customer_id, "discounts[0]")
        shown = {"coupon": None if promo else coupon["id"], "promotion_code": None}
        if promo:
            shown["promotion_code"] = promo["id"]
        return shown, coupon, promo

    def _subscription_data(self, params: Params, mode: str) -> Params:
        data = as_dict(params, "subscription_data") or {}
        if data and mode != "subscription":
            raise invalid(
                "You can only pass `subscription_data` in `subscription` mode.",
                "subscription_data",
            )
        trial_days = as_int(
            data, "trial_period_days", minimum=1, param="subscription_data[trial_period_days]"
        )
        trial_end = as_int(data, "trial_end", param="subscription_data[trial_end]")
        if trial_days is not None and trial_end is not None:
            raise only_one_of(
                "subscription_data[trial_end]", "subscription_data[trial_period_days]"
            )
        if trial_days is not None:
            trial_end = self.store.now() + trial_days * 86400
        return {
            "metadata": as_metadata(data) or {},
            "trial_end": trial_end,
            "description": as_str(data, "description"),
        }

    def _item(self, price: Obj, quantity: int) -> Obj:
        product = self.store.table("product").get(price["product"]) or {}
        name = product.get("name") or price["product"]
        return objects.checkout_item(new_id("li", 24), price, quantity, name)

    def retrieve_session(self, params: Params, session: str) -> Obj:
        return self.store.get("checkout.session", session)

    def update_session(self, params: Params, session: str) -> Obj:
        check_known(params, SESSION_UPDATE)
        obj = self.store.get("checkout.session", session)
        if obj["status"] != "open":
            raise invalid("This Checkout Session is no longer open and cannot be updated.")
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return obj

    def list_sessions(self, params: Params) -> Obj:
        check_known(params, SESSION_LIST)
        wanted = {
            name: as_str(params, name)
            for name in ("customer", "payment_intent", "subscription", "payment_link")
        }
        status = as_choice(params, "status", ("complete", "expired", "open"))
        items = [
            s
            for s in self.store.newest_first("checkout.session")
            if all(value is None or s[name] == value for name, value in wanted.items())
            and (status is None or s["status"] == status)
            and in_range(s["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/checkout/sessions", "checkout.session")

    def list_line_items(self, params: Params, session: str) -> Obj:
        check_known(params, LIST_PARAMS)
        self.store.get("checkout.session", session)
        items = self.line_items_of(session)["data"]
        url = f"/v1/checkout/sessions/{session}/line_items"
        return paginate(items, params, url, "item")

    def line_items_of(self, session_id: str) -> Obj:
        items = copy.deepcopy(self.store.hidden_of(session_id).get("line_items", []))
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return objects.list_object(items, url)

    def expire_session(self, params: Params, session: str) -> Obj:
        check_known(params, ())
        obj = self.store.get("checkout.session", session)
        if obj["status"] != "open":
            raise invalid('Only Checkout Sessions with a status in ["open"] can be expired.')
        obj.update(status="expired", url=None)
        self.store.emit("checkout.session.expired", obj)
        return obj

    # -- completion (test helper) ------------------------------------------------------

    def complete(self, session_id: str, promotion_code: str | None = None) -> list[Obj]:
        session = self.store.get("checkout.session", session_id)
        if session["status"] != "open":
            raise invalid(f"Checkout Session {session_id} is {session['status']}, not open.")
        mark = len(self.store.events)
        hidden = self.store.hidden_of(session_id)
        if promotion_code is not None:
            self._apply_entered_code(session, hidden, promotion_code)
        customer = self._paying_customer(session)
        session["customer_details"] = objects.completed_customer_details(
            customer.get("email"), customer.get("name")
        )
        session.update(status="complete", customer=customer["id"], url=None)
        session["payment_status"] = "paid" if session["amount_total"] else "no_payment_required"
        if session["mode"] != "subscription":
            self._complete_without_subscription(session)
            return self.store.events[mark:]
        sub, invoice = self._subscribe(session, hidden, customer)
        if sub["status"] == "trialing":
            session["payment_status"] = "no_payment_required"
        session.update(subscription=sub["id"], invoice=invoice["id"])
        self.store.emit("checkout.session.completed", session)
        self.subscriptions.emit_started(sub, invoice)
        return self.store.events[mark:]

    def _paying_customer(self, session: Obj) -> Obj:
        if session["customer"]:
            return self.store.get("customer", session["customer"])
        return self.catalog.customer_for_checkout(session["customer_email"])

    def _apply_entered_code(self, session: Obj, hidden: Obj, code: str) -> None:
        if not session["allow_promotion_codes"]:
            raise invalid("This Checkout Session does not allow promotion codes.")
        promo = self._find_code(code)
        self.catalog.usable_promotion_code(promo["id"], session["customer"], "promotion_code")
        coupon = self.store.table("coupon")[promo["promotion"]["coupon"]]
        session["discounts"] = [{"coupon": None, "promotion_code": promo["id"]}]
        off = discount_amount(coupon, session["amount_subtotal"])
        session["amount_total"] = session["amount_subtotal"] - off
        session["total_details"]["amount_discount"] = off
        hidden.update(coupon=coupon["id"], promotion_code=promo["id"])

    def _find_code(self, code: str) -> Obj:
        promos = self.store.newest_first("promotion_code")
        for promo in promos:
            if promo["id"] == code or (promo["active"] and promo["code"].lower() == code.lower()):
                return promo
        raise invalid(f"No active promotion code `{code}`.", "promotion_code")

    def _complete_without_subscription(self, session: Obj) -> None:
        if session["mode"] == "payment":
            session["payment_intent"] = new_id("pi")
        else:
            session["setup_intent"] = new_id("seti")
        self.store.emit("checkout.session.completed", session)

    def _subscribe(self, session: Obj, hidden: Obj, customer: Obj) -> tuple[Obj, Obj]:
        data = hidden.get("subscription_data") or {}
        items = hidden.get("line_items", [])
        lines = [
            (self.store.table("price")[item["price"]["id"]], item["quantity"])
            for item in items
            if item["price"]["type"] == "recurring"
        ]
        coupon_id, promo_id = hidden.get("coupon"), hidden.get("promotion_code")
        return self.subscriptions.start(
            customer,
            lines,
            metadata={**session["metadata"], **data.get("metadata", {})},
            trial_end=data.get("trial_end"),
            description=data.get("description"),
            coupon=self.store.table("coupon")[coupon_id] if coupon_id else None,
            promo=self.store.table("promotion_code")[promo_id] if promo_id else None,
            session_id=session["id"],
        )

    def virtual(self, node: Obj, key: str) -> Obj | None:
        """`expand[]=line_items` on a session: the list is not stored on the object."""
        if node.get("object") == "checkout.session" and key == "line_items":
            return self.line_items_of(node["id"])
        return None
