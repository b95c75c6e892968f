"""Customers, products, prices, coupons and promotion codes."""

from __future__ import annotations

import re
from typing import Any

from . import objects
from .errors import StripeError, invalid, missing_param, only_one_of
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_metadata,
    as_str,
    check_known,
    merge_metadata,
)
from .ids import invoice_prefix, new_id, promotion_code_text, random_token
from .listing import LIST_PARAMS, in_range, paginate
from .meters import price_meter
from .store import Obj, Store, changed_attributes

# Accepted parameter names, as in the SDK's params types (API version 2026-10-28).
CUSTOMER_CREATE = {
    "address", "balance", "business_name", "cash_balance", "description", "email",
    "individual_name", "invoice_prefix", "invoice_settings", "metadata", "name",
    "next_invoice_sequence", "payment_method", "phone", "preferred_locales", "shipping",
    "source", "tax", "tax_exempt", "tax_id_data", "test_clock", "validate",
}  # fmt: skip
CUSTOMER_UPDATE = (CUSTOMER_CREATE - {"payment_method", "tax_id_data", "test_clock"}) | {
    "default_source"
}
CUSTOMER_LIST = {*LIST_PARAMS, "created", "email", "test_clock"}
PRODUCT_CREATE = {
    "active", "default_price_data", "description", "id", "images", "marketing_features",
    "metadata", "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code",
    "tax_details", "type", "unit_label", "url",
}  # fmt: skip
PRODUCT_UPDATE = (PRODUCT_CREATE - {"default_price_data", "id", "type"}) | {"default_price"}
PRODUCT_LIST = {*LIST_PARAMS, "active", "created", "ids", "shippable", "type", "url"}
PRICE_CREATE = {
    "active", "billing_scheme", "currency", "currency_options", "custom_unit_amount",
    "lookup_key", "metadata", "nickname", "product", "product_data", "recurring",
    "tax_behavior", "tiers", "tiers_mode", "transfer_lookup_key", "transform_quantity",
    "unit_amount", "unit_amount_decimal",
}  # fmt: skip
PRICE_UPDATE = {
    "active", "currency_options", "lookup_key", "metadata", "nickname", "tax_behavior",
    "transfer_lookup_key",
}  # fmt: skip
PRICE_LIST = {
    *LIST_PARAMS, "active", "created", "currency", "lookup_keys", "product", "recurring", "type",
}  # fmt: skip
COUPON_CREATE = {
    "amount_off", "applies_to", "currency", "currency_options", "duration",
    "duration_in_months", "id", "max_redemptions", "metadata", "name", "percent_off",
    "redeem_by",
}  # fmt: skip
COUPON_UPDATE = {"currency_options", "metadata", "name"}
COUPON_LIST = {*LIST_PARAMS, "created"}
# `coupon` is the pre-2025-09 way of naming the coupon; `promotion[coupon]` is today's.
PROMO_CREATE = {
    "active", "code", "coupon", "customer", "customer_account", "expires_at",
    "max_redemptions", "metadata", "promotion", "restrictions",
}  # fmt: skip
PROMO_UPDATE = {"active", "metadata", "restrictions"}
PROMO_LIST = {*LIST_PARAMS, "active", "code", "coupon", "created", "customer", "customer_account"}

INTERVALS = ("day", "week", "month", "year")
_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
_CUSTOMER_STRINGS = ("description", "email", "name", "phone")
_PRODUCT_STRINGS = ("description", "name", "statement_descriptor", "tax_code", "unit_label")


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- customers ---------------------------------------------------------------------

    def create_customer(self, params: Params) -> Obj:
        check_known(params, CUSTOMER_CREATE)
        fields: Params = {name: as_str(params, name) for name in _CUSTOMER_STRINGS}
        fields["metadata"] = as_metadata(params)
        fields["preferred_locales"] = as_list(params, "preferred_locales")
        fields["tax_exempt"] = as_choice(params, "tax_exempt", ("none", "exempt", "reverse"))
        prefix = as_str(params, "invoice_prefix") or invoice_prefix()
        obj = objects.customer(new_id("cus"), self.store.now(), fields, prefix)
        return self._created(obj, "customer.created")

    def customer_for_checkout(self, email: str | None) -> Obj:
        """The customer Checkout creates when the session named none."""
        fields = {"email": email or f"buyer-{random_token(6).lower()}@example.com"}
        obj = objects.customer(new_id("cus"), self.store.now(), fields, invoice_prefix())
        return self._created(obj, "customer.created")

    def retrieve_customer(self, params: Params, customer: str) -> Obj:
        return self.store.get("customer", customer, allow_deleted=True)

    def update_customer(self, params: Params, customer: str) -> Obj:
        check_known(params, CUSTOMER_UPDATE)
        obj = self.store.get("customer", customer)
        before = self.store.snapshot(obj)
        for name in _CUSTOMER_STRINGS:
            if name in params:
                obj[name] = as_str(params, name)
        if "preferred_locales" in params:
            obj["preferred_locales"] = as_list(params, "preferred_locales")
        if "tax_exempt" in params:
            obj["tax_exempt"] = as_choice(params, "tax_exempt", ("none", "exempt", "reverse"))
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "customer.updated")

    def delete_customer(self, params: Params, customer: str) -> Obj:
        obj = self.store.get("customer", customer)
        for subscription in self.store.newest_first("subscription"):
            if subscription["customer"] == customer and subscription["status"] != "canceled":
                self._end_subscription(subscription)
        return self._deleted(obj, "customer.deleted")

    def list_customers(self, params: Params) -> Obj:
        check_known(params, CUSTOMER_LIST)
        email = as_str(params, "email")
        items = [
            c
            for c in self.store.newest_first("customer")
            if (email is None or c["email"] == email)
            and in_range(c["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/customers", "customer")

    def _end_subscription(self, subscription: Obj) -> None:
        now = self.store.now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        self.store.emit("customer.subscription.deleted", subscription)

    # -- products ----------------------------------------------------------------------

    def create_product(self, params: Params) -> Obj:
        check_known(params, PRODUCT_CREATE)
        product_id = as_str(params, "id") or new_id("prod", 14)
        if product_id in self.store.table("product"):
            raise StripeError(
                400, "Product already exists.", param="id", code="resource_already_exists"
            )
        obj = objects.product(product_id, self.store.now(), self._product_fields(params))
        self._created(obj, "product.created")
        price_data = as_dict(params, "default_price_data")
        if price_data is not None:
            price = self._create_price_from(price_data, product_id, "default_price_data")
            obj["default_price"] = price["id"]
        return obj

    def _product_fields(self, params: Params) -> Params:
        fields: Params = {name: as_str(params, name) for name in _PRODUCT_STRINGS}
        if fields["name"] is None:
            raise missing_param("name")
        fields["active"] = as_bool(params, "active") is not False
        fields["metadata"] = as_metadata(params)
        fields["images"] = as_list(params, "images")
        fields["shippable"] = as_bool(params, "shippable")
        fields["url"] = as_str(params, "url")
        return fields

    def retrieve_product(self, params: Params, product: str) -> Obj:
        return self.store.get("product", product, allow_deleted=True)

    def update_product(self, params: Params, product: str) -> Obj:
        check_known(params, PRODUCT_UPDATE)
        obj = self.store.get("product", product)
        before = self.store.snapshot(obj)
        for name in (*_PRODUCT_STRINGS, "url"):
            if name in params:
                obj[name] = as_str(params, name, required=name == "name")
        for name in ("active", "shippable"):
            if name in params:
                obj[name] = as_bool(params, name)
        if "images" in params:
            obj["images"] = as_list(params, "images")
        if "default_price" in params:
            obj["default_price"] = self._default_price(params, product)
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        if obj != before:
            obj["updated"] = self.store.now()
        return self._updated(obj, before, "product.updated")

    def _default_price(self, params: Params, product: str) -> str | None:
        price_id = as_str(params, "default_price")
        if price_id is None:
            return None
        price = self.store.referenced("price", price_id, "default_price")
        if price["product"] != product:
            raise invalid("The default price must belong to this product.", "default_price")
        return price_id

    def delete_product(self, params: Params, product: str) -> Obj:
        obj = self.store.get("product", product)
        if any(p["product"] == product for p in self.store.newest_first("price")):
            raise invalid(
                "This product cannot be deleted because it has one or more user-created prices."
            )
        return self._deleted(obj, "product.deleted")

    def list_products(self, params: Params) -> Obj:
        check_known(params, PRODUCT_LIST)
        active = as_bool(params, "active")
        ids = as_list(params, "ids")
        items = [
            p
            for p in self.store.newest_first("product")
            if (active is None or p["active"] == active)
            and (not ids or p["id"] in ids)
            and in_range(p["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/products", "product")

    # -- prices ------------------------------------------------------------------------

    def create_price(self, params: Params) -> Obj:
        check_known(params, PRICE_CREATE)
        product_id = as_str(params, "product")
        product_data = as_dict(params, "product_data")
        if product_id and product_data is not None:
            raise only_one_of("product", "product_data")
        if product_data is not None:
            product_id = self.create_product(product_data)["id"]
        elif product_id is None:
            raise invalid(
                "You must specify either `product` or `product_data` when creating a price.",
                "product",
            )
        else:
            self.store.referenced("product", product_id, "product")
        return self._create_price_from(params, product_id, None)

    def _create_price_from(self, params: Params, product_id: str, prefix: str | None) -> Obj:
        fields = self._price_fields(params, prefix)
        fields["product"] = product_id
        lookup_key = fields.get("lookup_key")
        if lookup_key is not None:
            self._claim_lookup_key(lookup_key, as_bool(params, "transfer_lookup_key") or False)
        obj = objects.price(new_id("price"), self.store.now(), fields)
        return self._created(obj, "price.created")

    def _price_fields(self, params: Params, prefix: str | None) -> Params:
        def label(name: str) -> str:
            return f"{prefix}[{name}]" if prefix else name

        currency = as_str(params, "currency", required=True, param=label("currency"))
        unit_amount = as_int(params, "unit_amount", minimum=0, param=label("unit_amount"))
        decimal = as_float(params, "unit_amount_decimal", param=label("unit_amount_decimal"))
        if unit_amount is None and decimal is not None:
            unit_amount = round(decimal)
        if unit_amount is None:
            raise missing_param(label("unit_amount"))
        return {
            "currency": (currency or "").lower(),
            "unit_amount": unit_amount,
            "recurring": self._recurring(params, label("recurring")),
            "active": as_bool(params, "active") is not False,
            "lookup_key": as_str(params, "lookup_key"),
            "nickname": as_str(params, "nickname"),
            "metadata": as_metadata(params),
            "tax_behavior": as_choice(
                params, "tax_behavior", ("exclusive", "inclusive", "unspecified")
            ),
        }

    def _recurring(self, params: Params, label: str) -> Obj | None:
        spec = as_dict(params, "recurring", param=label)
        if spec is None:
            return None
        interval = as_choice(spec, "interval", INTERVALS, param=f"{label}[interval]")
        if interval is None:
            raise missing_param(f"{label}[interval]")
        count = as_int(spec, "interval_count", minimum=1, param=f"{label}[interval_count]")
        usage = as_choice(spec, "usage_type", ("licensed", "metered"), param=f"{label}[usage_type]")
        trial = as_int(spec, "trial_period_days", minimum=1)
        shown = objects.recurring(interval, count or 1, usage or "licensed", trial)
        meter = as_str(spec, "meter", param=f"{label}[meter]")
        shown["meter"] = price_meter(self.store, meter, shown["usage_type"], label)
        return shown

    def _claim_lookup_key(self, lookup_key: str, transfer: bool, owner: str | None = None) -> None:
        for price in self.store.newest_first("price"):
            if price["lookup_key"] != lookup_key or price["id"] == owner:
                continue
            if not transfer:
                raise invalid(
                    f"A price (`{price['id']}`) already uses that lookup key.", "lookup_key"
                )
            before = self.store.snapshot(price)
            price["lookup_key"] = None
            self._updated(price, before, "price.updated")

    def retrieve_price(self, params: Params, price: str) -> Obj:
        return self.store.get("price", price)

    def update_price(self, params: Params, price: str) -> Obj:
        check_known(params, PRICE_UPDATE)
        obj = self.store.get("price", price)
        before = self.store.snapshot(obj)
        if "lookup_key" in params:
            lookup_key = as_str(params, "lookup_key")
            if lookup_key is not None:
                transfer = as_bool(params, "transfer_lookup_key") or False
                self._claim_lookup_key(lookup_key, transfer, owner=price)
            obj["lookup_key"] = lookup_key
        if "active" in params:
            obj["active"] = as_bool(params, "active")
        if "nickname" in params:
            obj["nickname"] = as_str(params, "nickname")
        if "tax_behavior" in params:
            obj["tax_behavior"] = as_choice(
                params, "tax_behavior", ("exclusive", "inclusive", "unspecified")
            )
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "price.updated")

    def list_prices(self, params: Params) -> Obj:
        check_known(params, PRICE_LIST)
        filters = _PriceFilter(params)
        items = [p for p in self.store.newest_first("price") if filters.matches(p)]
        return paginate(items, params, "/v1/prices", "price")

    # -- coupons -----------------------------------------------------------------------

    def create_coupon(self, params: Params) -> Obj:
        check_known(params, COUPON_CREATE)
        coupon_id = as_str(params, "id") or random_token(8)
        if coupon_id in self.store.table("coupon"):
            raise StripeError(
                400, "Coupon already exists.", param="id", code="resource_already_exists"
            )
        obj = objects.coupon(coupon_id, self.store.now(), _coupon_fields(params))
        return self._created(obj, "coupon.created")

    def retrieve_coupon(self, params: Params, coupon: str) -> Obj:
        return self.store.get("coupon", coupon, allow_deleted=True)

    def update_coupon(self, params: Params, coupon: str) -> Obj:
        check_known(params, COUPON_UPDATE)
        obj = self.store.get("coupon", coupon)
        before = self.store.snapshot(obj)
        if "name" in params:
            obj["name"] = as_str(params, "name")
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "coupon.updated")

    def delete_coupon(self, params: Params, coupon: str) -> Obj:
        obj = self.store.get("coupon", coupon)
        obj["valid"] = False
        return self._deleted(obj, "coupon.deleted")

    def list_coupons(self, params: Params) -> Obj:
        check_known(params, COUPON_LIST)
        items = [
            c
            for c in self.store.newest_first("coupon")
            if in_range(c["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/coupons", "coupon")

    # -- promotion codes ---------------------------------------------------------------

    def create_promotion_code(self, params: Params) -> Obj:
        check_known(params, PROMO_CREATE)
        coupon = self._promotion_coupon(params)
        code = as_str(params, "code") or promotion_code_text()
        if not _CODE_PATTERN.match(code):
            raise invalid(
                "Promotion codes may only contain letters, digits, dashes and underscores.",
                "code",
            )
        active = as_bool(params, "active") is not False
        if active:
            self._ensure_code_free(code, None)
        customer = as_str(params, "customer")
        if customer is not None:
            self.store.referenced("customer", customer, "customer")
        fields = {
            "active": active,
            "code": code,
            "customer": customer,
            "expires_at": as_int(params, "expires_at"),
            "max_redemptions": as_int(params, "max_redemptions", minimum=1),
            "metadata": as_metadata(params),
        }
        obj = objects.promotion_code(new_id("promo"), self.store.now(), fields, coupon)
        _apply_restrictions(obj, as_dict(params, "restrictions"))
        return self._created(obj, "promotion_code.created")

    def _promotion_coupon(self, params: Params) -> Obj:
        promotion = as_dict(params, "promotion") or {}
        legacy = as_str(params, "coupon")
        nested = as_str(promotion, "coupon", param="promotion[coupon]")
        if legacy and nested:
            raise only_one_of("coupon", "promotion[coupon]")
        if not (legacy or nested):
            raise missing_param("promotion[coupon]")
        param = "coupon" if legacy else "promotion[coupon]"
        coupon = self.store.referenced("coupon", legacy or nested, param)
        if not coupon["valid"]:
            raise invalid(f"Coupon {coupon['id']} is no longer valid.", param)
        return coupon

    def _ensure_code_free(self, code: str, owner: str | None) -> None:
        for promo in self.store.newest_first("promotion_code"):
            taken = promo["active"] and promo["code"].lower() == code.lower()
            if taken and promo["id"] != owner:
                raise invalid(
                    f"An active promotion code with `code: {code}` already exists.", "code"
                )

    def retrieve_promotion_code(self, params: Params, promotion_code: str) -> Obj:
        return self.store.get("promotion_code", promotion_code)

    def update_promotion_code(self, params: Params, promotion_code: str) -> Obj:
        check_known(params, PROMO_UPDATE)
        obj = self.store.get("promotion_code", promotion_code)
        before = self.store.snapshot(obj)
        if "active" in params:
            active = as_bool(params, "active")
            if active:
                self._ensure_code_free(obj["code"], promotion_code)
            obj["active"] = bool(active)
        _apply_restrictions(obj, as_dict(params, "restrictions"))
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "promotion_code.updated")

    def list_promotion_codes(self, params: Params) -> Obj:
        check_known(params, PROMO_LIST)
        active = as_bool(params, "active")
        code = as_str(params, "code")
        coupon = as_str(params, "coupon")
        customer = as_str(params, "customer")
        items = [
            p
            for p in self.store.newest_first("promotion_code")
            if (active is None or p["active"] == active)
            and (code is None or p["code"].lower() == code.lower())
            and (coupon is None or p["promotion"]["coupon"] == coupon)
            and (customer is None or p["customer"] == customer)
            and in_range(p["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/promotion_codes", "promotion code")

    def usable_promotion_code(self, promo_id: str, customer: str | None, param: str) -> Obj:
        """A promotion code a purchase may apply now, or Stripe's 400 explaining why not."""
        promo = self.store.referenced("promotion_code", promo_id, param)
        coupon = self.store.tables["coupon"].get(promo["promotion"]["coupon"])
        expires_at = promo["expires_at"]
        limit = promo["max_redemptions"]
        if not promo["active"] or (expires_at is not None and expires_at <= self.store.now()):
            raise invalid(f"This promotion code is not active: {promo['code']}", param)
        if limit is not None and promo["times_redeemed"] >= limit:
            raise invalid(f"This promotion code has been fully redeemed: {promo['code']}", param)
        if coupon is None or not coupon["valid"]:
            raise invalid(f"The coupon of promotion code {promo['code']} is not valid.", param)
        if promo["customer"] is not None and promo["customer"] != customer:
            raise invalid("This promotion code cannot be redeemed by this customer.", param)
        return promo

    def usable_coupon(self, coupon_id: str, param: str) -> Obj:
        coupon = self.store.referenced("coupon", coupon_id, param)
        if not coupon["valid"]:
            raise invalid(f"Coupon {coupon_id} is no longer valid.", param)
        return coupon

    def redeem(self, coupon: Obj, promo: Obj | None) -> None:
        coupon["times_redeemed"] += 1
        limit = coupon["max_redemptions"]
        if limit is not None and coupon["times_redeemed"] >= limit:
            coupon["valid"] = False
        if promo is not None:
            promo["times_redeemed"] += 1

    # -- shared ------------------------------------------------------------------------

    def _created(self, obj: Obj, event_type: str) -> Obj:
        self.store.insert(obj)
        self.store.emit(event_type, obj)
        return obj

    def _updated(self, obj: Obj, before: Obj, event_type: str) -> Obj:
        previous = changed_attributes(before, self.store.snapshot(obj))
        if previous:
            self.store.emit(event_type, obj, previous)
        return obj

    def _deleted(self, obj: Obj, event_type: str) -> Obj:
        self.store.emit(event_type, obj)
        tombstone = objects.deleted(obj["id"], obj["object"])
        self.store.table(obj["object"])[obj["id"]] = tombstone
        return tombstone


class _PriceFilter:
    def __init__(self, params: Params) -> None:
        self.active = as_bool(params, "active")
        self.currency = as_str(params, "currency")
        self.product = as_str(params, "product")
        self.type = as_choice(params, "type", ("one_time", "recurring"))
        self.lookup_keys = as_list(params, "lookup_keys")
        if len(self.lookup_keys) > 10:
            raise invalid("You may pass at most 10 lookup keys.", "lookup_keys")
        recurring = as_dict(params, "recurring") or {}
        self.interval = as_choice(recurring, "interval", INTERVALS, param="recurring[interval]")
        self.created = params.get("created")

    def matches(self, price: Obj) -> bool:
        recurring = price["recurring"] or {}
        return (
            (self.active is None or price["active"] == self.active)
            and (self.currency is None or price["currency"] == self.currency.lower())
            and (self.product is None or price["product"] == self.product)
            and (self.type is None or price["type"] == self.type)
            and (not self.lookup_keys or price["lookup_key"] in self.lookup_keys)
            and (self.interval is None or recurring.get("interval") == self.interval)
            and in_range(price["created"], self.created, "created")
        )


def _coupon_fields(params: Params) -> Params:
    percent_off = as_float(params, "percent_off")
    amount_off = as_int(params, "amount_off", minimum=1)
    currency = as_str(params, "currency")
    if percent_off is not None and amount_off is not None:
        raise only_one_of("amount_off", "percent_off")
    if percent_off is None and amount_off is None:
        raise invalid("Must provide either `amount_off` or `percent_off`.", "percent_off")
    if percent_off is not None and not 0 < percent_off <= 100:
        raise invalid("Percent off must be between 0 and 100.", "percent_off")
    if amount_off is not None and currency is None:
        raise missing_param("currency")
    duration = as_choice(params, "duration", ("forever", "once", "repeating")) or "once"
    months = as_int(params, "duration_in_months", minimum=1)
    if duration == "repeating" and months is None:
        raise missing_param("duration_in_months")
    return {
        "percent_off": percent_off,
        "amount_off": amount_off,
        "currency": currency.lower() if currency else None,
        "duration": duration,
        "duration_in_months": months if duration == "repeating" else None,
        "max_redemptions": as_int(params, "max_redemptions", minimum=1),
        "redeem_by": as_int(params, "redeem_by"),
        "name": as_str(params, "name"),
        "metadata": as_metadata(params),
    }


def _apply_restrictions(promo: Obj, restrictions: Params | None) -> None:
    if restrictions is None:
        return
    target: dict[str, Any] = promo["restrictions"]
    first_time = as_bool(restrictions, "first_time_transaction")
    if first_time is not None:
        target["first_time_transaction"] = first_time
    minimum = as_int(restrictions, "minimum_amount", minimum=0)
    if minimum is not None:
        target["minimum_amount"] = minimum
    currency = as_str(restrictions, "minimum_amount_currency")
    if currency is not None:
        target["minimum_amount_currency"] = currency.lower()
